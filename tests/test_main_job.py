"""The README's main job, as a user runs it: `tinytrainer run --preset demo` in an empty folder, offline."""
import os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).parents[1]

def test_readme_main_job_command(tmp_path):
    readme = (ROOT / 'README.md').read_text()
    cmds = re.findall(r'```sh\n(pip install [^\n]+)\n```', readme)
    assert len(cmds) == 2 and cmds[0].endswith('tinytrainer run --preset demo') and cmds[1].endswith('tools/test')
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    r = subprocess.run(['tinytrainer', 'run', '--preset', 'demo'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert '# Curation report: demo' in r.stdout and '## sft:' in r.stdout and '## cot:' in r.stdout
    run = tmp_path / 'runs' / 'demo' / 'curate'
    assert (run / 'manifest.json').exists() and (run / 'report.md').exists() and (run / 'lengths.png').exists()
    again = subprocess.run(['tinytrainer', 'run', '--preset', 'demo'], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and 'reusing' in again.stdout

def test_readme_in_sync():
    r = subprocess.run(['tinytrainer', 'readme', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
