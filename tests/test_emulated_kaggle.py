"""The kaggle-t4x2 code path end to end on a CPU, as far as a CPU can run it (issue 15): under a real Jupyter kernel
(nbclient), `run_sft` launches 2 gloo ranks through `notebook_launcher` with the live view and tqdm in the children;
the base is 4-bit NF4 (bitsandbytes' CPU backend), the math fp16 autocast with a `GradScaler` and fp32 LoRA weights,
rows packed, gradient checkpointing on, the kaggle preset's per-stage time budget. The budget stops both ranks
together with a checkpoint; one process (the kernel itself, as on a one-GPU session) then resumes it to the end.
The whole path is switched on by `TINYTRAINER_EMULATE_T4=1` (chapter 03); a tiny random model keeps it to seconds."""
import json, math
from pathlib import Path

import nbformat
from nbclient import NotebookClient

SETUP = '''
import os
os.environ.update(TINYTRAINER_EMULATE_T4='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
from dataclasses import replace
from tinytrainer.config import preset
from tinytrainer.sft import run_sft
cfg, tiny = preset('kaggle-t4x2'), preset('tiny')   # the Kaggle settings; the tiny model and data
cfg.model, cfg.curate, cfg.output_root, cfg.sft.lora = tiny.model, tiny.curate, {root!r}, tiny.sft.lora
cfg.sft.train = replace(cfg.sft.train, max_steps=24, tokens_per_step=512, micro_batch_tokens=256, lr=1e-2, eval_every=8,
                        sample_every=8, save_every=8, gradient_checkpointing='on', time_budget_min=0.45)   # under the 30 s margin: stops after step 1
assert cfg.sft.quant.bits == 4 and cfg.sft.train.packing and cfg.model.dtype == 'auto'
'''
TWO_RANKS = "run = run_sft(cfg, num_processes=2)"
ONE_RANK = "cfg.sft.train = replace(cfg.sft.train, time_budget_min=0.0)   # a longer session: the same run resumes\nrun = run_sft(cfg, num_processes=1)"
CHECK = '''
from tinytrainer.model import is_kbit
from tinytrainer.stack import load_run
model, tok = load_run(run, 'fp16', device='cpu', quantized=True)
print('kbit', is_kbit(model), {p.dtype for n, p in model.named_parameters() if 'lora_' in n})
'''

def text_of(cell) -> str:
    return ''.join(o.get('text', '') + ''.join(o.get('data', {}).get('text/plain', '')) for o in cell.outputs)

def test_kaggle_path_emulated_on_cpu(tmp_path, monkeypatch):
    root = tmp_path / 'runs'
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (SETUP.format(root=str(root)), TWO_RANKS, ONE_RANK, CHECK)])
    monkeypatch.setenv('OMP_NUM_THREADS', '1')   # the kernel and its two ranks share the cores
    NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / 'executed.ipynb')
    two, one, check = (text_of(c) for c in nb.cells[1:])
    run = root / 'kaggle-t4x2' / 'sft'   # the run is named after the preset
    # 2 ranks: launched through notebook_launcher, the live plot inline, stopped together by the budget
    assert 'launching 2 worker processes on the CPU (gloo)' in two and 'Launching training on' not in two, two[-2000:]
    assert sum('image/png' in o.get('data', {}) for o in nb.cells[1].outputs) == 1, two[-2000:]
    assert 'stopped at step 1/24 to stay inside the time budget; run again to resume' in two, two[-2000:]
    # 1 rank: the same run resumed from the 2-process checkpoint, to the end
    assert 'a checkpoint of 2 processes, on 1' in one and 'sft: finished in' in one, one[-2000:]
    res = json.loads((run / 'result.json').read_text())
    assert res['status'] == 'done' and res['processes'] == 1 and res['precision'] == 'fp16' and res['total'] == 24, res
    rows = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()]
    train = [r for r in rows if 'loss' in r]
    assert [r['step'] for r in train] == list(range(1, 25)), [r['step'] for r in train]
    assert all(math.isfinite(r['loss']) for r in train) and all(math.isfinite(r['eval_loss']) for r in rows if 'eval_loss' in r)
    assert all('loss_scale' in r for r in train) and train[-1]['loss_scale'] >= 2 ** 10, train[-1]
    assert sum(bool(r.get('skipped')) for r in train) < 0.05 * len(train), [r.get('loss_scale') for r in train]
    assert train[-1]['loss'] < train[0]['loss'], (train[0], train[-1])
    # the stack reloads on the 4-bit base, its LoRA weights fp32
    assert 'kbit True {torch.float32}' in check, check
    # no warning a user cannot act on, in any cell
    for t in (two, one, check):
        for bad in ('gemm_4bit_forward', 'gemv_4bit', 'is_gradient_checkpointing', 'Could not find a config', 'Traceback'):
            assert bad not in t, (bad, t[-2000:])
