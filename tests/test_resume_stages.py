"""Interrupting preference sampling or DPO training (SIGKILL, as a lost Kaggle session) and running the
command again continues without redoing finished work or losing results. Each run is a CLI subprocess."""
import json, os, subprocess
from pathlib import Path

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}

def cli(root, cmd, fault=None, check=True):
    env = dict(ENV, TINYTRAINER_FAULT=fault) if fault else ENV
    r = subprocess.run(['tinytrainer', cmd, '--preset', 'tiny', '--output-root', str(root)], env=env,
                       capture_output=True, text=True, timeout=900)
    if check: assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r

def lines(path): return Path(path).read_text().splitlines()

def test_preference_and_dpo_resume_after_a_kill(tmp_path):
    cli(tmp_path, 'sft'); cli(tmp_path, 'cot')
    pref = tmp_path / 'tiny' / 'preference'
    r = cli(tmp_path, 'preference', fault='kill_after_batch:2', check=False)
    assert r.returncode != 0 and not (pref / 'manifest.json').exists()
    before = lines(pref / 'samples' / 'rank-0.jsonl')
    assert len(before) == 8                       # 2 batches of 4 prompts (batch_size 8, k 2) were kept
    cli(tmp_path, 'preference')
    after = lines(pref / 'samples' / 'rank-0.jsonl')
    assert after[:8] == before and len(after) == 18 and (pref / 'manifest.json').exists()
    assert len({json.loads(l)['id'] for l in after}) == 18   # no prompt sampled twice

    dpo = tmp_path / 'tiny' / 'dpo'
    r = cli(tmp_path, 'dpo', fault='kill_after_step:6', check=False)
    assert r.returncode != 0 and not (dpo / 'manifest.json').exists()
    ref_time = (dpo / 'reference.json').stat().st_mtime_ns
    assert [c.name for c in (dpo / 'checkpoints').iterdir()] == ['step-000004']
    cli(tmp_path, 'dpo')
    assert (dpo / 'reference.json').stat().st_mtime_ns == ref_time   # reference log-probs not recomputed
    steps = [json.loads(l)['step'] for l in lines(dpo / 'metrics.jsonl') if 'loss' in json.loads(l)]
    assert steps == list(range(1, 13)), steps
    man = json.loads((dpo / 'manifest.json').read_text())
    assert [a['name'] for a in man['adapters']] == ['sft', 'cot', 'dpo']
