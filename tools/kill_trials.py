#!/usr/bin/env python
"""Kill trials: run `tinytrainer run --preset tiny` (every stage) uninterrupted once, then N times with a SIGKILL at a
random moment followed by the same command again until it finishes; compare what each trial left (adapters, pairs,
scores, the report's figures) with the uninterrupted run, byte for byte.

    python tools/kill_trials.py --trials 10 [--seed 0] [--stage run]

Prints one line per trial and the share of identical resumes. Takes about a minute per trial on 2 cores."""
import argparse, hashlib, json, os, random, signal, subprocess, sys, tempfile, time
from pathlib import Path

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'MPLBACKEND': 'Agg'}
COMPARED = ('adapter/adapter_model.safetensors', 'pairs.jsonl', '.arrow')   # adapters, pairs, every curated split

def command(root, stage): return ['tinytrainer', stage, '--preset', 'tiny', '--output-root', str(root)]

def outcome(root: Path) -> dict:
    "sha256 of every result file the runs under `root` hold that two identical runs must share."
    out = {}
    for f in sorted((root / 'tiny').rglob('*')):
        rel = str(f.relative_to(root / 'tiny'))
        if f.is_file() and rel.endswith(COMPARED):
            out[rel] = hashlib.sha256(f.read_bytes()).hexdigest()[:12]
        elif rel == 'eval/scores.json':   # every model's scores (not the wall times)
            sets = [m['sets'] for m in json.loads(f.read_text())['models']]
            out[rel] = hashlib.sha256(json.dumps(sets, sort_keys=True).encode()).hexdigest()[:12]
    return out

def run_killed(root: Path, stage: str, at: float) -> int:
    "Start the command, SIGKILL its process group after `at` seconds (if still running), then rerun until it finishes."
    p = subprocess.Popen(command(root, stage), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try: p.wait(at); killed = 0
    except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait(); killed = 1
    for _ in range(3):
        r = subprocess.run(command(root, stage), env=ENV, capture_output=True, text=True)
        if r.returncode == 0: return killed
        print(r.stdout[-1500:], r.stderr[-1500:], file=sys.stderr)
    raise SystemExit(f'{root}: the rerun after a kill at {at:.1f} s did not finish')

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--trials', type=int, default=10); ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--stage', default='run', help='the subcommand to kill (default: run, every stage)')
    a = ap.parse_args()
    rng, tmp = random.Random(a.seed), Path(tempfile.mkdtemp(prefix='kill-trials-'))
    t0 = time.time(); subprocess.run(command(tmp / 'ref', a.stage), env=ENV, check=True, capture_output=True)
    full, ref = time.time() - t0, outcome(tmp / 'ref')
    print(f'uninterrupted: {full:.0f} s, {len(ref)} result files compared')
    same = 0
    for i in range(a.trials):
        at = rng.uniform(5, full)
        killed = run_killed(tmp / f't{i}', a.stage, at)
        got = outcome(tmp / f't{i}')
        diff = sorted(k for k in ref.keys() | got.keys() if ref.get(k) != got.get(k))
        same += not diff
        print(f'trial {i + 1}: kill at {at:5.1f} s ({"killed" if killed else "had finished"}): '
              + ('identical' if not diff else f'DIFFERENT: {", ".join(diff[:4])}'), flush=True)
    print(f'{same}/{a.trials} identical resumes ({tmp})')
    return 0 if same == a.trials else 1

if __name__ == '__main__': sys.exit(main())
