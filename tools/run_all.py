"Execute notebooks top to bottom under a real Jupyter kernel (nbclient), as Run All would; report error outputs. Usage: cd nbs && python ../tools/run_all.py 41_curate 42_sft ..."
import sys, time, nbformat
from pathlib import Path
from nbclient import NotebookClient
bad = {}
for name in sys.argv[1:]:
    t = time.time()
    nb = nbformat.read(f'{name}.ipynb', as_version=4)
    try: NotebookClient(nb, timeout=900, kernel_name='python3', resources={'metadata': {'path': '.'}}, allow_errors=True).execute()
    except Exception as e: bad[name] = f'client: {e}'
    errs = [(i, o.get('ename'), o.get('evalue', '')[:200]) for i, c in enumerate(nb.cells) if c.cell_type == 'code' for o in c.get('outputs', []) if o.get('output_type') == 'error']
    stderr_tb = [(i, o['text'][:200]) for i, c in enumerate(nb.cells) if c.cell_type == 'code' for o in c.get('outputs', []) if o.get('output_type') == 'stream' and o.get('name') == 'stderr' and 'Traceback' in o.get('text', '')]
    skipped = sum('skipped:' in o.get('text', '') for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []) if o.get('output_type') == 'stream')
    print(f'{name}: {time.time() - t:.0f} s, errors {errs}, tracebacks on stderr {stderr_tb}, cells skipped with a line: {skipped}', flush=True)
