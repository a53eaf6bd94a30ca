"""The damage matrix of finished runs: every file a finished curate or SFT run depends on (manifest, curated Arrow
files, adapter weights and config, tokenizer) truncated, emptied, garbled, or with one byte flipped, and manifests of
the wrong JSON type. Each case ends in a `DamagedRun` that names the file and says what to do, never in a traceback
of another kind and never in a silent reuse; `--force` then replaces the damaged run."""
import json, random, shutil
from pathlib import Path
import pytest
from tinytrainer.config import load_config
from tinytrainer.pipeline import stage
from tinytrainer.runs import DamagedRun, MANIFEST

HOW = ('truncated', 'emptied', 'garbled', 'flipped')

def damage(f: Path, how: str):
    b = bytearray(f.read_bytes())
    if how == 'truncated': b = b[:len(b) // 2]
    elif how == 'emptied': b = bytearray()
    elif how == 'garbled': b = bytearray(random.Random(0).randbytes(max(len(b), 8)))
    else: b[len(b) * 3 // 4] ^= 0x40          # one byte, far from a safetensors header
    f.write_bytes(bytes(b))

@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp('runs')
    cfg = load_config('tiny', overrides=[f'output_root={root}'])
    stage('curate').run(cfg); stage('sft').run(cfg)
    return root

def copy_of(finished, tmp_path):
    shutil.copytree(finished, tmp_path / 'r', ignore=shutil.ignore_patterns('.lock'))
    return tmp_path / 'r', load_config('tiny', overrides=[f'output_root={tmp_path / "r"}'])

def files_of(run: Path, *kinds):
    return sorted(p.relative_to(run) for p in run.rglob('*') if p.is_file() and p.suffix in kinds)

def cases(finished):
    out = []
    for st, kinds in (('curate', ('.arrow', '.json', '.md')), ('sft', ('.safetensors', '.json', '.pt', '.jsonl', '.yaml'))):
        for f in files_of(finished / 'tiny' / st, *kinds):
            if f.name in ('started.json', '.elapsed.json') or f.parts[0] == 'checkpoints': continue   # not read once finished
            out += [(st, f, how) for how in HOW]
    return out

def test_every_damaged_file_is_named(finished, tmp_path):
    tried = 0
    for st, rel, how in cases(finished):
        r, cfg = copy_of(finished, tmp_path / f'{tried}')
        f = r / 'tiny' / st / rel
        damage(f, how)
        with pytest.raises(DamagedRun) as e: stage(st).run(cfg)
        msg = str(e.value)
        assert rel.name in msg and '--force' in msg, (st, rel, how, msg)
        tried += 1
    kinds = {rel.suffix for _, rel, _ in cases(finished)}
    assert tried >= 60 and {'.arrow', '.json', '.safetensors', '.pt'} <= kinds, (tried, kinds)

@pytest.mark.parametrize('content', ['[]', '"x"', '3', 'null', '{"stage": "sft"}', '{"fingerprint": 1'])
def test_a_manifest_of_the_wrong_type_is_named(finished, tmp_path, content):
    r, cfg = copy_of(finished, tmp_path)
    (r / 'tiny' / 'sft' / MANIFEST).write_text(content)
    with pytest.raises(DamagedRun) as e: stage('sft').run(cfg)
    assert MANIFEST in str(e.value)

def test_force_replaces_a_damaged_run_and_keeps_it_aside(finished, tmp_path):
    r, cfg = copy_of(finished, tmp_path)
    damage(r / 'tiny' / 'sft' / 'adapter' / 'adapter_model.safetensors', 'flipped')
    stage('sft').run(cfg, force=True)
    man = json.loads((r / 'tiny' / 'sft' / MANIFEST).read_text())
    assert man['stage'] == 'sft' and 'adapter/adapter_model.safetensors' in man['checksums']
    stage('sft').run(cfg)                      # the new run is whole: reused

@pytest.mark.parametrize('how', ['garbled', 'wrong type'])
def test_an_unfinished_run_with_a_damaged_started_json_is_kept_aside(finished, tmp_path, how, capsys):
    "An unfinished run (checkpoints, no manifest) whose started.json is damaged: moved aside whole, then trained anew."
    r, cfg = copy_of(finished, tmp_path)
    sft = r / 'tiny' / 'sft'
    (sft / MANIFEST).unlink()
    if how == 'garbled': damage(sft / 'started.json', 'garbled')
    else: (sft / 'started.json').write_text('[1, 2]')
    stage('sft').run(cfg)
    out = capsys.readouterr().out
    assert 'has checkpoints but no readable started.json: kept in' in out, out[-2000:]
    aside = [p for p in (r / 'tiny').iterdir() if p.name.startswith('sft.replaced-')]
    assert len(aside) == 1 and (aside[0] / 'checkpoints').is_dir() and (sft / MANIFEST).exists()
