"""The evaluation report shown inline under a real Jupyter kernel (nbclient), as in a notebook or on Kaggle:
`run_eval` displays the report as Markdown and both figures as PNG."""
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

def test_eval_report_shown_inline(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from tinytrainer.config import load_config\nfrom tinytrainer.eval import run_eval\n"
        "cfg = load_config('tiny')\ncfg.output_root = 'runs'\nrun = run_eval(cfg)")]   # no stage trained: the base alone
    os.environ.update(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
    NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(tmp_path)}}).execute()
    outs = nb.cells[0].outputs
    markdown = [o['data']['text/markdown'] for o in outs if 'text/markdown' in o.get('data', {})]
    assert len(markdown) == 1 and '# Evaluation: tiny' in markdown[0] and '| base |' in markdown[0]
    assert '![' not in markdown[0]                                   # the figures come as images instead
    assert sum('image/png' in o.get('data', {}) for o in outs) == 2
    assert (tmp_path / 'runs' / 'tiny' / 'eval' / 'report.md').exists()
