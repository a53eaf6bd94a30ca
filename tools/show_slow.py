"""Run a notebook through a real Jupyter kernel, `slow` cells included (gpu/kaggle cells skipped), and print
what its slow cells printed: nbdev_test runs the same cells but hides their output.
Usage: python tools/show_slow.py nbs/42_sft.ipynb"""
import nbformat, re, os, sys, time
from nbclient import NotebookClient
path = os.path.abspath(sys.argv[1])
nb = nbformat.read(path, as_version=4)
flag = re.compile(r'^#\|\s*(gpu|kaggle)\s*$', re.M)
nb.cells = [c for c in nb.cells if not (c.cell_type == 'code' and flag.search(c.source))]
os.environ['HF_HUB_OFFLINE'] = '1'
t = time.time()
NotebookClient(nb, timeout=3000, kernel_name='python3', resources={'metadata': {'path': os.path.dirname(path)}}).execute()
for c in nb.cells:
    if c.cell_type == 'code' and '#| slow' in c.source:
        print('----', c.source.splitlines()[1][:80])
        for o in c.outputs:
            if o.get('output_type') == 'stream' and o.get('name') == 'stdout': print(o['text'][-1500:])
print(f'total {time.time() - t:.0f} s')
