"""The kernels' install cell (`kaggle.INSTALL`) run for real, offline, in a fresh virtual environment standing in for a
Kaggle image: a package the image already has at another version is replaced by the lock's version (issue 15, defect 7),
and without a lock it would have been kept. The wheels are metadata-only (`wheels.metadata_wheel`)."""
import os, subprocess, sys, venv
from pathlib import Path

from tinytrainer.kaggle import INSTALL
from tinytrainer.wheels import metadata_wheel, pip_env

def image(tmp: Path) -> Path:
    "A fresh environment (pip, no site packages) with `helper-lib` 2.0 preinstalled, as an image has its own peft; its python."
    venv.create(tmp / 'image', with_pip=True)
    py = tmp / 'image' / 'bin' / 'python'
    pre = metadata_wheel(tmp / 'pre', 'helper-lib', '2.0')
    subprocess.run([py, '-m', 'pip', 'install', '-q', '--no-index', str(pre)], check=True, env=pip_env())
    return py

def dataset(tmp: Path, lock: bool) -> Path:
    "The wheels dataset under a stand-in /kaggle/input: tinytrainer needing helper-lib>=1, helper-lib 1.2 and 2.0, maybe the lock."
    ds = tmp / 'input' / 'tinytrainer-wheels'
    metadata_wheel(ds, 'tinytrainer', '0.1.0', ['helper-lib>=1'])
    for v in ('1.2', '2.0'): metadata_wheel(ds, 'helper-lib', v)
    if lock: (ds / 'requirements.lock').write_text('# key: 0\n# torch==2.8.0 is provided by Kaggle\nhelper-lib==1.2  # helper_lib-1.2-py3-none-any.whl\n')
    return tmp / 'input'

def install(py: Path, inputs: Path) -> tuple[str, str]:
    "(the cell's output, helper-lib's version after it) with the install cell run by the image's python."
    code = INSTALL.replace('{git_url}', 'https://example.invalid/x.git').replace('{owner}', 'alice').replace('{wheels}', 'tinytrainer-wheels')
    r = subprocess.run([py, '-c', code], capture_output=True, text=True, env={**{k: v for k, v in pip_env().items() if k != 'PYTHONPATH'}, 'KAGGLE_INPUT': str(inputs)}, timeout=300,
                       cwd=inputs)   # not the checkout: its tinytrainer/ would count as installed
    assert r.returncode == 0, r.stdout + r.stderr
    v = subprocess.run([py, '-c', "from importlib.metadata import version; print(version('helper-lib'))"], capture_output=True, text=True, cwd=inputs)
    return r.stdout, v.stdout.strip()

def test_install_cell_puts_the_locked_versions_over_the_image(tmp_path):
    py = image(tmp_path)
    out, v = install(py, dataset(tmp_path / 'with', lock=True))
    assert 'at the versions of its lock' in out and v == '1.2', (out, v)
    out, v = install(image(tmp_path / 'again'), dataset(tmp_path / 'without', lock=False))
    assert 'at the versions of its lock' not in out and v == '2.0', (out, v)   # the image's version, untested, kept
