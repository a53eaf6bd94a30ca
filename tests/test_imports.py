"""Importing tinytrainer and every module must not import bitsandbytes/peft nor initialise CUDA:
accelerate's notebook_launcher refuses to fork after either."""
import json, subprocess, sys
from pathlib import Path

MODULES = sorted(p.stem for p in (Path(__file__).parents[1] / 'tinytrainer').glob('*.py') if not p.stem.startswith('_'))

def test_import_hygiene():
    code = f"""
import importlib, json, sys
for m in {MODULES!r}: importlib.import_module('tinytrainer.' + m)
torch = sys.modules.get('torch')
print(json.dumps(dict(bnb='bitsandbytes' in sys.modules, peft='peft' in sys.modules,
                      cuda=bool(torch and torch.cuda.is_initialized()))))
"""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == dict(bnb=False, peft=False, cuda=False)
    assert len(MODULES) >= 8
