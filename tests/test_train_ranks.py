"""The training loop on 2 gloo ranks on CPU (a real process group through `tinytrainer.launch`, as on Kaggle's T4 x2):
stop decisions agreed across ranks (time budget, non-finite loss) and resuming a checkpoint with another process count.
All phases run once, in this file run as a script in a subprocess with a hard timeout: a hang fails the tests, never CI."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
SPEC = dict(max_steps=8, lr=1e-2, tokens_per_step=600, micro_batch_tokens=128, eval_every=0, sample_every=0, save_every=0,
            keep_last=2, warmup_ratio=0.0, seed=3)

def tiny_examples(n=48, seed=0):
    "Random token sequences, the first third a prompt without labels."
    import random
    rng, out = random.Random(seed), []
    for _ in range(n):
        ids = [rng.randrange(1, 64) for _ in range(rng.randrange(12, 40))]
        k = len(ids) // 3
        out.append(dict(input_ids=ids, labels=[-100] * k + ids[k:]))
    return out

def tiny_model(seed=0):
    "A tiny random Llama whose attention projections are trainable (the loop's view of an adapter; no peft, which would import bitsandbytes before the fork)."
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    m = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                     num_key_value_heads=1, vocab_size=64, attn_implementation='sdpa'))
    for n, p in m.named_parameters(): p.requires_grad_(n.endswith(('q_proj.weight', 'v_proj.weight')))
    return m

def worker(out, spec_kw, sleep_rank1=0.0, tag='', fault=''):
    "One rank: train the tiny model; write what `train_loop` returned to `out/result-<tag>-<rank>.json`."
    import torch
    from accelerate import Accelerator
    from tinytrainer.config import TrainSpec
    from tinytrainer.train import train_loop
    torch.set_num_threads(1)
    if fault: os.environ['TINYTRAINER_FAULT'] = fault
    acc = Accelerator(cpu=True)
    model = tiny_model()
    if acc.process_index == 1 and sleep_rank1: time.sleep(sleep_rank1)   # rank 1 reaches the loop later (slower loading)
    res = train_loop(acc, model, tiny_examples(), TrainSpec(**{**SPEC, **spec_kw}), out, 0)
    r = dict(status=res.status, step=res.step, total=res.total, processes=acc.num_processes, message=getattr(res, 'message', ''))
    Path(out, f'result-{tag}-{acc.process_index}.json').write_text(json.dumps(r))

def run_phase(out, processes, spec, sleep=0.0, tag='', fault=''):
    "`worker` on `processes` ranks (a fresh forked child for one, so this parent never holds an Accelerator)."
    import multiprocessing
    from tinytrainer.launch import launch
    args = (out, spec, sleep, tag, fault)
    if processes > 1: return launch(worker, args, num_processes=processes)
    p = multiprocessing.get_context('fork').Process(target=worker, args=args)
    p.start(); p.join()
    assert p.exitcode == 0, p.exitcode

def script(*phases, timeout=120, env=None):
    "Run this file with `phases` (`run_phase` keywords, each tagged by its position) under a hard timeout; (returncode, output)."
    cmd = [sys.executable, __file__, *[json.dumps(dict(p, tag=str(i))) for i, p in enumerate(phases)]]
    p = subprocess.Popen(cmd, env={**ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try: out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); out, _ = p.communicate()
        raise AssertionError(f'ranks hung for {timeout} s:\n' + out[-3000:])
    return p.returncode, out

def results(out, tag): return {int(f.stem.split('-')[2]): json.loads(f.read_text()) for f in Path(out).glob(f'result-{tag}-*.json')}
def metrics(out): return [json.loads(l) for l in (Path(out) / 'metrics.jsonl').read_text().splitlines()]

def checkpoint_names(out): return sorted(p.name for p in (Path(out) / 'checkpoints').glob('step-*'))

@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    "Every phase of both tests in one script (one start-up): the folders, return code and output."
    root = tmp_path_factory.mktemp('ranks')
    d = {k: root / k for k in ('late', 'straight', 'one', 'nan')}
    rc, out = script(dict(out=str(d['late']), processes=2, spec=dict(time_budget_min=32 / 60), sleep=4.0),   # phase 0
                     dict(out=str(d['late']), processes=1, spec={}),                                        # 1
                     dict(out=str(d['straight']), processes=2, spec={}),   # 2: the run without a stop, for the loss curve
                     dict(out=str(d['one']), processes=1, spec=dict(time_budget_min=0.5)),                  # 3
                     dict(out=str(d['one']), processes=2, spec={}),                                         # 4
                     dict(out=str(d['nan']), processes=2, spec=dict(save_every=2), fault='nan_loss_at_step:5'))  # 5
    return d, rc, out

def test_budget_stop_agreed_then_resume_on_one_process(ranks):
    """Rank 1 reaches the loop 4 s after rank 0, whose clock then says the budget is over after step 1 while rank 1's
    does not: before the agreed stop, rank 0 entered the checkpoint's barrier while rank 1 ran step 2 (a hang). With one
    agreed stop flag both write the stop checkpoint; one process then resumes it to the end with the same plan, and
    the loss curve is that of the run that never stopped."""
    d, rc, out = ranks
    assert rc == 0, out[-3000:]
    two, one = results(d['late'], 0), results(d['late'], 1)
    assert two[0]['status'] == two[1]['status'] == 'budget' and two[0]['step'] == two[1]['step'], (two, out[-2000:])
    assert one[0]['status'] == 'done' and one[0]['processes'] == 1 and one[0]['total'] == two[0]['total'], (one, out[-2000:])
    steps = [m['step'] for m in metrics(d['late']) if 'loss' in m]
    assert steps == list(range(1, one[0]['total'] + 1)), steps
    assert f"step-{two[0]['step']:06d}, a checkpoint of 2 processes, on 1" in out, out[-2000:]
    resumed, straight = ([m['loss'] for m in metrics(d[k]) if 'loss' in m] for k in ('late', 'straight'))
    assert len(resumed) == len(straight) and max(abs(x - y) for x, y in zip(resumed, straight)) < 1e-4, (resumed, straight)

def test_resume_on_two_ranks_and_nonfinite_stop_on_both(ranks):
    """A one-process checkpoint resumes on 2 ranks with the same steps; `nan_loss_at_step:5` on 2 ranks stops both
    ranks together after 3 bad steps, the last good checkpoint kept, no NaN in any file the run left."""
    from tinytrainer.checkpoint import read_checkpoint
    d, rc, out = ranks
    assert rc == 0, out[-3000:]
    one, two, bad = results(d['one'], 3), results(d['one'], 4), results(d['nan'], 5)
    assert one[0]['status'] == 'budget' and one[0]['step'] == 1, one
    assert two[0]['status'] == two[1]['status'] == 'done' and two[0]['total'] == one[0]['total'], two
    assert 'step-000001, a checkpoint of 1 processes, on 2' in out, out[-2000:]
    assert [m['step'] for m in metrics(d['one']) if 'loss' in m] == list(range(1, one[0]['total'] + 1))
    assert bad[0]['status'] == bad[1]['status'] == 'nonfinite' and bad[0]['step'] == bad[1]['step'] == 7, bad
    assert 'steps 5-7' in bad[0]['message'] and 'step-000004' in bad[0]['message']
    assert checkpoint_names(d['nan']) == ['step-000002', 'step-000004']
    for name in checkpoint_names(d['nan']):
        for rank in (0, 1): read_checkpoint(d['nan'] / 'checkpoints' / name, rank, 2)   # verified, tensors finite
    text = (d['nan'] / 'metrics.jsonl').read_text()
    assert 'NaN' not in text and 'Infinity' not in text and '"loss": null' in text

def precision_worker(out):
    "One rank: three stages' Accelerators in turn, each with another precision, each followed by a collective."
    import torch
    from tinytrainer.hardware import make_accelerator
    seen = []
    for precision in ('fp32', 'bf16', 'fp32'):
        acc = make_accelerator(precision)
        total = acc.reduce(torch.ones(1) * (acc.process_index + 1), 'sum').item()
        seen.append([acc.mixed_precision, acc.num_processes, total])
    Path(out, f'precision-{acc.process_index}.json').write_text(json.dumps(seen))

def test_another_precision_per_stage_on_two_ranks(tmp_path):
    """Defect 4 on 2 gloo ranks: a second and third stage in the same worker processes ask another precision; each gets
    it (accelerate's state reset) and the process group stays, so the next collective still sums both ranks."""
    p = subprocess.run([sys.executable, __file__, '--precision', str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    for rank in (0, 1):
        seen = json.loads((tmp_path / f'precision-{rank}.json').read_text())
        assert seen == [['no', 2, 3.0], ['bf16', 2, 3.0], ['no', 2, 3.0]], seen

if __name__ == '__main__' and sys.argv[1:2] == ['--precision']:
    from tinytrainer.launch import launch
    launch(precision_worker, (sys.argv[2],), num_processes=2)
elif __name__ == '__main__':
    T0 = time.time()
    import transformers.models.llama.modeling_llama   # once, before the ranks fork
    for ph in map(json.loads, sys.argv[1:]):
        Path(ph['out']).mkdir(parents=True, exist_ok=True)
        run_phase(**ph)
        print('phase', ph['tag'], f'{time.time() - T0:.1f}s', 'results', results(ph['out'], ph['tag']), flush=True)
