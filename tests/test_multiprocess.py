"""The multi-process path on CPU: 2 ranks in a real gloo group through notebook_launcher, as on Kaggle's 2 GPUs.
Each run goes through the CLI in a subprocess, like a user's."""
import json, os, subprocess, sys, textwrap
from pathlib import Path

import pytest

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}

def sft(root, *overrides, fault=None, check=True):
    env = dict(ENV, TINYTRAINER_FAULT=fault) if fault else ENV
    cmd = ['tinytrainer', 'sft', '--preset', 'tiny', '--output-root', str(root), '--num-processes', '2', '--set', *overrides]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if check: assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r

def adapter(run):
    from safetensors.torch import load_file
    return load_file(str(run / 'adapter' / 'adapter_model.safetensors'))

def metrics(run): return [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()]

RESUME = ['sft.lora.dropout=0.1', 'sft.train.save_every=4', 'sft.train.packing=true']

@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp('a')
    sft(root, *RESUME)
    return root / 'tiny' / 'sft'

def test_two_processes_learn(uninterrupted):
    run = uninterrupted
    res = json.loads((run / 'result.json').read_text())
    assert res['processes'] == 2 and res['status'] == 'done'
    losses = [m['loss'] for m in metrics(run) if 'loss' in m]
    assert sum(losses[-5:]) <= 0.8 * sum(losses[:5]), losses
    assert any('eval_loss' in m for m in metrics(run))
    samples = [json.loads(l) for l in (run / 'samples.jsonl').read_text().splitlines()]
    assert {s['step'] for s in samples} >= {4, 8, 12}
    code = textwrap.dedent(f"""
        import torch
        from peft import PeftModel
        from tinytrainer.config import preset
        from tinytrainer.model import load_base
        cfg = preset('tiny')
        base, tok = load_base(cfg.model, seed=cfg.sft.train.seed)
        ids = tok('What is 3 + 4?', return_tensors='pt').input_ids
        with torch.no_grad():
            a = base(ids).logits
            b = PeftModel.from_pretrained(base, {str(run / 'adapter')!r})(ids).logits
        assert (a - b).abs().max() > 1e-3
        print('ok')
    """)
    r = subprocess.run([sys.executable, '-c', code], env=ENV, capture_output=True, text=True)
    assert r.stdout.strip().endswith('ok'), r.stderr

def test_kill_and_resume_matches_uninterrupted(uninterrupted, tmp_path):
    r = sft(tmp_path, *RESUME, fault='kill_after_step:6', check=False)
    assert r.returncode != 0
    run = tmp_path / 'tiny' / 'sft'
    assert not (run / 'manifest.json').exists()
    assert sorted(p.name for p in (run / 'checkpoints').glob('step-*')) == ['step-000004']
    r = sft(tmp_path, *RESUME)
    assert 'resuming' in r.stdout
    a, b = adapter(uninterrupted), adapter(run)
    assert a.keys() == b.keys() and len(a) > 0
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-6, worst
    assert [m['step'] for m in metrics(run) if 'loss' in m] == list(range(1, 13))

def test_kill_during_checkpoint_save_keeps_previous(tmp_path):
    r = sft(tmp_path, *RESUME, fault='kill_in_save:8', check=False)
    assert r.returncode != 0
    ck = tmp_path / 'tiny' / 'sft' / 'checkpoints'
    assert sorted(p.name for p in ck.glob('step-*')) == ['step-000004']
    assert (ck / '.tmp-step-000008').exists()
    sft(tmp_path, *RESUME)
    assert (tmp_path / 'tiny' / 'sft' / 'manifest.json').exists()

def test_distributed_launch_two_processes(tmp_path):
    """Power users run the same stage under `accelerate launch --multi_gpu` (torchrun underneath) on more
    machines. On CPU `accelerate launch --cpu` starts one process only, so this uses torchrun directly:
    2 ranks each running the CLI; rank 0 prepares the run, the other follows."""
    from tinytrainer.launch import free_port
    cmd = ['torchrun', '--nproc_per_node', '2', '--master_port', str(free_port()), '-m', 'tinytrainer.cli', 'sft', '--preset', 'tiny',
           '--output-root', str(tmp_path), '--set', 'sft.train.max_steps=4']
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path / 'tiny' / 'sft'
    assert json.loads((run / 'result.json').read_text())['processes'] == 2
    assert (run / 'manifest.json').exists() and (run / 'adapter' / 'adapter_model.safetensors').exists()

def test_distributed_launch_force(tmp_path):
    """`--force` under torchrun: rank 0 replaces the finished run and trains; the other rank must follow it, not return
    at once on the old manifest (which left rank 0 alone in its first collective: a hang). Rank 0 is made late on
    purpose (a fixed delay), so that rank 1 always looks first."""
    from tinytrainer.launch import free_port
    def torchrun(*extra, env=ENV):
        cmd = ['torchrun', '--nproc_per_node', '2', '--master_port', str(free_port()), '-m', 'tinytrainer.cli', 'sft', '--preset', 'tiny',
               '--output-root', str(tmp_path), '--set', 'sft.train.max_steps=2', *extra]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r
    torchrun()
    run = tmp_path / 'tiny' / 'sft'
    first = json.loads((run / 'manifest.json').read_text())['finished']
    r = torchrun('--force', env=dict(ENV, TINYTRAINER_FAULT='rank0_delay_s:4'))
    assert 'replacing the finished run' in r.stdout and json.loads((run / 'result.json').read_text())['processes'] == 2
    assert (run / 'manifest.json').exists() and json.loads((run / 'manifest.json').read_text())['finished'] >= first

def test_distributed_launch_preference(tmp_path):
    """`tinytrainer preference` under torchrun: rank 0 prepares the run, rank 1 follows it, each samples its own
    share of the prompts, and rank 0 builds the pairs after both are done."""
    from tinytrainer.launch import free_port
    common = ['--preset', 'tiny', '--output-root', str(tmp_path)]
    for stage in ('sft', 'cot'):
        r = subprocess.run(['tinytrainer', stage, *common, '--set', f'{stage}.train.max_steps=2'], env=ENV, capture_output=True,
                           text=True, timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    cmd = ['torchrun', '--nproc_per_node', '2', '--master_port', str(free_port()), '-m', 'tinytrainer.cli', 'preference', *common]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'time budget ended' not in r.stdout and r.stdout.count('preference: starting in') == 1, r.stdout[-3000:]
    run = tmp_path / 'tiny' / 'preference'
    ids = {rank: [json.loads(l)['id'] for l in (run / 'samples' / f'rank-{rank}.jsonl').read_text().splitlines()] for rank in (0, 1)}
    from tinytrainer.config import load_config
    pc = load_config('tiny').preference
    assert ids[0] and ids[1] and not set(ids[0]) & set(ids[1])
    assert sorted(ids[0] + ids[1]) == list(range(pc.n_prompts + pc.heldout_prompts))
    man = json.loads((run / 'manifest.json').read_text())
    assert man['result']['prompts'] == pc.n_prompts + pc.heldout_prompts and (run / 'pairs.jsonl').exists()
