"""Every kernel `tinytrainer kaggle build` writes whose stage function the installed TinyTrainer has runs headlessly
through a real Jupyter kernel (nbclient), on the CPU with the `tiny` preset, in chain order. Each reads the previous
kernel's output through a stand-in `/kaggle/input` (KAGGLE_INPUT): the output is moved there, so that nothing can
reach the previous session's folders, and mounted at a different depth each time, as Kaggle's mount paths have
changed. Each saved notebook must hold the plots and the samples."""
import contextlib, io, json, os, re, shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tinytrainer.cli import main
from tinytrainer.config import preset
from tinytrainer.kaggle import STAGES, slugify

MOUNTS = ['{slug}', 'notebooks/alice/{slug}', 'kernels/alice/{slug}/output']
SHORT = [f'{stage}.train.{k}={v}' for stage in ('sft', 'cot', 'dpo')                 # seconds per training stage
         for k, v in dict(max_steps=4, eval_every=2, sample_every=2, save_every=2).items()]


def runnable_chain():
    "The kernels in chain order (every stage of the pipeline that has a kernel)."
    return list(STAGES)


def outputs(cell):
    images = [o for o in cell.outputs if 'image/png' in o.get('data', {})]
    text = ''.join(o.get('text', '') for o in cell.outputs if o.get('output_type') == 'stream')
    return images, text


def run_kernel(path: Path, work: Path):
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if 'parameters' in c.metadata.get('tags', []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(f"preset = 'tiny'; overrides = {SHORT!r}  # injected by the test"))
    at = next(i for i, c in enumerate(nb.cells) if 'prepare_kernel(' in c.source)   # the checks left notebook_launcher able to fork
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell('from tinytrainer.launch import fork_traps\nassert fork_traps() == [], fork_traps()'))
    NotebookClient(nb, timeout=900, kernel_name='python3', resources={'metadata': {'path': str(work)}}).execute()
    return nb


def test_kernels_run_in_chain_on_cpu(tmp_path, monkeypatch):
    chain = runnable_chain()
    assert [s.stage for s in chain[:3]] == ['curate', 'sft', 'cot'], chain
    kernels = tmp_path / 'kaggle_build'
    with contextlib.redirect_stdout(io.StringIO()): assert main(['kaggle', 'build', '--user', 'alice', '--out', str(kernels)]) == 0
    for k, v in dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false').items():
        monkeypatch.setenv(k, v)
    previous = None
    for i, spec in enumerate(chain):
        inp, work = tmp_path / f'{i}-input', tmp_path / f'{i}-working'
        inp.mkdir(); work.mkdir()
        if previous is not None:
            mount = inp / MOUNTS[i % len(MOUNTS)].format(slug=slugify(previous[0].title))
            mount.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(previous[1], mount)
        monkeypatch.setenv('KAGGLE_INPUT', str(inp)); monkeypatch.setenv('KAGGLE_WORKING', str(work))
        meta = json.loads((kernels / spec.stage / 'kernel-metadata.json').read_text())
        nb = run_kernel(kernels / spec.stage / meta['code_file'], work)
        nbformat.write(nb, tmp_path / f'{spec.stage}.executed.ipynb')

        run_dir = work / 'runs' / 'tiny' / spec.stage
        assert (run_dir / 'manifest.json').exists(), f'{spec.stage}: no finished run in {run_dir}'
        run_cell = next(c for c in nb.cells if 'run = ' in c.source)
        results = next(c for c in nb.cells if 'show_results(' in c.source)
        images, text = outputs(results)
        assert images or any(outputs(c)[0] for c in nb.cells if c.cell_type == 'code'), \
            f'{spec.stage}: no plot in the saved notebook (the results show the *.png the stage saves in {run_dir})'
        assert 'Samples:\n' in text and 'Samples: none' not in text, text[-2000:]
        assert f'{spec.stage}: finished' in text, text[-2000:]
        if hasattr(getattr(preset('tiny'), spec.stage), 'train'):   # training stages: the live plot, samples as they come
            images, live = outputs(run_cell)
            assert len(images) == 1 and re.search(r'\[step \d+\]', live), live[-2000:]
        prepare = next(c for c in nb.cells if 'prepare_kernel(' in c.source)
        _, text = outputs(prepare)
        assert 'TinyTrainer doctor' in text and (spec.previous is None or f'{spec.previous}: ' in text), text[-2000:]
        assert re.search(r'time +~(<1|\d+(\.\d+)?) (s|min|h)', text), f'{spec.stage}: no expected time before the run: {text[-2000:]}'
        if spec is chain[-1]:   # the last kernel: ask the model, and export cells that do nothing until turned on
            asked = outputs(next(c for c in nb.cells if 'ask(cfg' in c.source))[1]
            assert 'base:' in asked and 'stack:' in asked, asked
            assert 'nothing exported' in outputs(next(c for c in nb.cells if 'take_away(' in c.source))[1]
        previous = (spec, work)
