"""Ctrl-C during a stage: a short message saying the same command resumes, no traceback; the rerun resumes."""
import os, signal, subprocess, time
from pathlib import Path

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}


def test_ctrl_c_then_resume(tmp_path):
    cmd = ['tinytrainer', 'sft', '--preset', 'tiny', '--output-root', str(tmp_path), '--set', 'sft.train.max_steps=40',
           'sft.train.save_every=2']
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ck, t = tmp_path / 'tiny' / 'sft' / 'checkpoints', time.time()
    while not (ck.is_dir() and any(ck.glob('step-*'))):
        assert p.poll() is None and time.time() - t < 300, 'no checkpoint before the run ended'
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (p.returncode, err[-2000:])
    assert 'interrupted' in err and 'the same command resumes' in err and 'Traceback' not in err, err[-2000:]
    assert not (tmp_path / 'tiny' / 'sft' / 'manifest.json').exists()
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and 'sft: resuming in' in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert (tmp_path / 'tiny' / 'sft' / 'manifest.json').exists()
