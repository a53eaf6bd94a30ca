"""Checkpoints through `train_loop`, in this process: crafted pickles in a run folder run no code on resume, a damaged
latest checkpoint falls back to the previous one, and a really full disk (a small tmpfs) is a named error."""
import os, pickle, shutil, subprocess
from pathlib import Path

import pytest
from test_train_ranks import SPEC, tiny_examples, tiny_model

def loop(out, **kw):
    from accelerate import Accelerator
    from tinytrainer.config import TrainSpec
    from tinytrainer.train import train_loop
    m = tiny_model()
    return train_loop(Accelerator(cpu=True), m, tiny_examples(), TrainSpec(**{**SPEC, **kw}), out, 0), m

class Evil:
    "Unpickling this writes the marker file (stands for any code)."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))

def test_crafted_pickles_run_no_code(tmp_path):
    from tinytrainer.checkpoint import CheckpointError
    marker = tmp_path / 'ran'
    pickle.loads(pickle.dumps(Evil(marker))); assert marker.exists(); marker.unlink()   # the payload works
    out = tmp_path / 'run'; old = out / 'checkpoints' / 'step-000004'; old.mkdir(parents=True)
    for f in ('state.pt', 'optimizer.pt', 'rng-0.pt', 'adapter.pt'): (old / f).write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(CheckpointError, match='torch pickles') as e: loop(out)
    assert 'step-000004' in str(e.value) and 'Delete' in str(e.value)
    assert not marker.exists()
    shutil.rmtree(old)
    res, _ = loop(out, max_steps=4, save_every=2)                 # good checkpoints at steps 2 and 4
    for f in ('state.pt', 'optimizer.pt', 'rng-0.pt'):             # stray pickles inside the good step 2
        (out / 'checkpoints' / 'step-000002' / f).write_bytes(pickle.dumps(Evil(marker)))
    shutil.rmtree(old); old.mkdir()                                # step 4 replaced by a crafted old-format one
    for f in ('state.pt', 'optimizer.pt', 'rng-0.pt'): (old / f).write_bytes(pickle.dumps(Evil(marker)))
    res, _ = loop(out, max_steps=4, save_every=2)                  # falls back to step 2, resumes to the end
    assert res.status == 'done' and (out / 'checkpoints' / 'damaged-step-000004').is_dir() and not marker.exists()

def test_damaged_latest_checkpoint_falls_back(tmp_path, capsys):
    from safetensors.torch import load_file
    res, m = loop(tmp_path, save_every=2, keep_last=2)
    want = {n: p.detach().clone() for n, p in m.named_parameters() if p.requires_grad}
    ck = tmp_path / 'checkpoints'
    assert res.status == 'done' and sorted(p.name for p in ck.glob('step-*')) == ['step-000006', 'step-000008']
    f = ck / 'step-000008' / 'adapter.safetensors'
    b = bytearray(f.read_bytes()); b[8 + int.from_bytes(b[:8], 'little') + 5] ^= 1; f.write_bytes(bytes(b))   # one tensor bit
    res, m2 = loop(tmp_path, save_every=2, keep_last=2)
    said = capsys.readouterr().out
    assert 'step-000008 unusable (adapter.safetensors' in said and 'resuming from step-000006' in said, said
    assert res.status == 'done' and (ck / 'damaged-step-000008').is_dir()
    got = load_file(str(ck / 'step-000008' / 'adapter.safetensors'))   # retrained from step 6: the same weights
    assert all((got[n] - want[n]).abs().max() < 1e-6 for n in want)

@pytest.fixture
def small_disk(tmp_path):
    d = tmp_path / 'disk'; d.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=96k', 'tmpfs', str(d)], capture_output=True)
    if r.returncode != 0: pytest.skip('cannot mount a tmpfs here (needs root)')
    try: yield d
    finally: subprocess.run(['umount', '-l', str(d)])

def test_disk_full_is_a_named_error(small_disk):
    from tinytrainer.checkpoint import CheckpointError, checkpoints, read_checkpoint
    with pytest.raises(CheckpointError) as e: loop(small_disk, save_every=1, keep_last=5)
    msg = str(e.value)
    assert msg.startswith('disk full while writing checkpoint') and 'is intact' in msg, msg
    good = checkpoints(small_disk)
    assert good and not list((small_disk / 'checkpoints').glob('.tmp-*'))
    assert f'{good[-1].name} is intact' in msg
    read_checkpoint(good[-1])   # the previous one still verifies
