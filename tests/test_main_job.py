"""The README's main job, as a user runs it: `tinytrainer run` in an empty folder, offline. The README's own
command (`--preset demo`, about 25 minutes on 2 cores) is the slow check in nbs/48_pipeline.ipynb; here the
same command runs every stage on the `tiny` preset."""
import os, re, subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}

def test_readme_commands():
    readme = (ROOT / 'README.md').read_text()
    cmds = re.findall(r'```sh\n(pip install [^\n]+)\n```', readme)
    assert len(cmds) == 2 and cmds[0].endswith('tinytrainer run --preset demo') and cmds[1].endswith('tools/test')

def test_main_job_runs_every_stage(tmp_path):
    r = subprocess.run(['tinytrainer', 'run', '--preset', 'tiny'], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for i, stage in enumerate(['curate', 'sft', 'cot', 'preference', 'dpo', 'eval']):
        assert f'== stage {i + 1}/6: {stage} (tiny) ==' in r.stdout
        assert (tmp_path / 'runs' / 'tiny' / stage / 'manifest.json').exists()
    report = tmp_path / 'runs' / 'tiny' / 'eval' / 'report.md'
    assert f'report: {Path("runs/tiny/eval/report.md")}' in r.stdout and report.exists()
    for stage in ['curate', 'sft', 'cot', 'preference', 'dpo', 'eval']:   # every stage's wall time is in the report
        assert re.search(rf'^\| {stage} \| \d', report.read_text(), re.M), stage
    again = subprocess.run(['tinytrainer', 'run', '--preset', 'tiny'], cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count('reusing') >= 5, again.stdout[-2000:]

def test_readme_in_sync():
    r = subprocess.run(['tinytrainer', 'readme', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
