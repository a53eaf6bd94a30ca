"""`tinytrainer push` with no network ends in one named message, exit code 2, no traceback, the run untouched: in
offline mode (HF_HUB_OFFLINE=1) and with the Hub's address refusing connections (a real connection error, no network needed)."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
from tinytrainer.config import load_config, to_dict
from tinytrainer.runs import finish_run

@pytest.fixture(scope='module')
def root(tmp_path_factory):
    "A finished sft run of `tiny` whose adapter folder holds an adapter_config.json (nothing is trained)."
    root = tmp_path_factory.mktemp('push')
    run = root / 'tiny' / 'sft'
    (run / 'adapter').mkdir(parents=True)
    (run / 'adapter' / 'adapter_config.json').write_text(json.dumps(dict(peft_type='LORA', r=8)))
    (run / 'adapter' / 'adapter_model.safetensors').write_bytes(b'weights')
    finish_run(run, 'sft', 'fp-sft', to_dict(load_config('tiny')), adapters=[dict(name='sft', path=str(run / 'adapter'))])
    return root

def push(root, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'TRANSFORMERS_'))}   # the client reads both offline flags
    e.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), HF_TOKEN='hf_not_a_real_token', **env)
    return subprocess.run([sys.executable, '-m', 'tinytrainer.cli', 'push', '--preset', 'tiny', '--output-root', str(root), '--repo', 'me/tiny-sft'],
                          capture_output=True, text=True, env=e, timeout=120)

@pytest.mark.parametrize('env, says', [(dict(HF_HUB_OFFLINE='1'), 'the Hub cannot be reached (offline mode: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set)'),
                                       (dict(HF_ENDPOINT='http://127.0.0.1:9'), 'the Hub cannot be reached (ConnectError')])
def test_push_without_network_is_one_named_message(root, env, says):
    folder = root / 'tiny' / 'sft'
    before = {f: f.read_bytes() for f in folder.rglob('*') if f.is_file()}
    r = push(root, **env)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and 'Traceback' not in r.stderr and len(err) == 1, r.stderr
    assert err[0].startswith(f"tinytrainer push: error: uploading {folder / 'adapter'} to me/tiny-sft failed: ") and says in err[0], err[0]
    assert 'Nothing here changed' in err[0] and 'to retry' in err[0] and 'hf_not_a_real_token' not in r.stderr + r.stdout
    assert {f: f.read_bytes() for f in folder.rglob('*') if f.is_file()} == before
