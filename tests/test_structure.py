"""The package's shape: no import circle, no import from a later layer, the stage list exists once (in `pipeline.STAGES`), and a new stage needs no
other module touched to appear in the main job, the CLI and the Kaggle kernels."""
import ast, contextlib, io, json, re
from pathlib import Path

import pytest

import tinytrainer
from tinytrainer import pipeline
from tinytrainer.cli import main, parser
from tinytrainer.config import load_config
from tinytrainer.runs import Kernel, Stage, finish_run, fingerprint, run_once

PKG = Path(tinytrainer.__file__).parent
ROOT = PKG.parent
MODULES = {p.stem: p for p in sorted(PKG.glob('*.py')) if p.stem not in ('__init__', '_modidx')}


def imported_modules(tree: ast.AST, top_only: bool) -> set[str]:
    "The tinytrainer modules a module's syntax tree imports (only at module level if `top_only`)."
    nodes = tree.body if top_only else list(ast.walk(tree))
    out = set()
    for n in nodes:
        if isinstance(n, ast.ImportFrom):
            mod = n.module or ''
            if n.level == 1: out |= {mod.split('.')[0]} if mod else {a.name for a in n.names}
            elif mod == 'tinytrainer': out |= {a.name for a in n.names}
            elif mod.startswith('tinytrainer.'): out.add(mod.split('.')[1])
        elif isinstance(n, ast.Import):
            out |= {a.name.split('.')[1] for a in n.names if a.name.startswith('tinytrainer.')}
    return out & set(MODULES)


def import_graph(top_only: bool) -> dict[str, set[str]]:
    return {m: imported_modules(ast.parse(p.read_text()), top_only) - {m} for m, p in MODULES.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    "One import circle of `graph`, or None."
    state, stack = {}, []
    def visit(m):
        state[m] = 'open'; stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 'open': return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)): return c
        state[m] = 'done'; stack.pop()
    for m in sorted(graph):
        if m not in state and (c := visit(m)): return c
    return None


def test_cycle_finder_finds_a_circle():
    assert cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert cycle({'a': {'b'}, 'b': set()}) is None


def test_no_import_circle_at_module_level():
    assert cycle(import_graph(top_only=True)) is None


def test_no_import_circle_through_function_level_imports():
    assert cycle(import_graph(top_only=False)) is None


LAYERS = ('core', 'data', 'model', 'train', 'stages', 'ship')   # the tour's table: chapter 0x is core, 1x data, ...
_CHAPTER = re.compile(r'File to edit: \.\./nbs/(\d)\d_')

def layer_of(path: Path) -> int:
    "The layer of an exported module: the tens digit of the chapter it is exported from."
    m = _CHAPTER.search(path.read_text())
    assert m, f'{path.name}: no "File to edit: ../nbs/NN_..." line (not exported by nbdev?)'
    return int(m.group(1))

def upward_imports(graph: dict[str, set[str]], layer: dict[str, int]) -> set[tuple[str, str]]:
    "(importer, imported) pairs where a module imports one of a later layer."
    return {(m, n) for m, ns in graph.items() for n in ns if layer[n] > layer[m]}

# Known up-imports still to move (issue 24), each named: the list can only shrink (guards: issue 25 added the guard sets to the
# registry the rules check, the way facts and ladder are there). The core's config rules check
# source names against the data layer's registry; the training stage curates through the curate stage directly.
KNOWN_UPWARD = {('rules', 'facts'), ('rules', 'guards'), ('rules', 'ladder'), ('rules', 'sources'), ('stage', 'curate')}


def test_the_layer_finder_finds_one():
    assert upward_imports({'a': {'b'}, 'b': {'a'}}, {'a': 0, 'b': 1}) == {('a', 'b')}
    assert upward_imports({'a': set(), 'b': {'a'}}, {'a': 0, 'b': 1}) == set()


def test_no_module_imports_a_later_layer():
    layer = {m: layer_of(p) for m, p in MODULES.items()}
    assert all(0 <= l < len(LAYERS) for l in layer.values()), layer
    found = upward_imports(import_graph(top_only=False), layer)
    named = lambda pairs: sorted(f'{a} ({LAYERS[layer[a]]}) imports {b} ({LAYERS[layer[b]]})' for a, b in pairs)
    assert found - KNOWN_UPWARD == set(), named(found - KNOWN_UPWARD)
    assert KNOWN_UPWARD - found == set(), f'no longer imported, take them off KNOWN_UPWARD: {sorted(KNOWN_UPWARD - found)}'


def stage_literals(tree: ast.AST, names: set[str]):
    "Line numbers of list, tuple, set or dict literals holding two or more stage names."
    for n in ast.walk(tree):
        items = n.elts if isinstance(n, (ast.List, ast.Tuple, ast.Set)) else (n.keys + n.values) if isinstance(n, ast.Dict) else []
        found = {e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str)} & names
        if len(found) >= 2: yield n.lineno, sorted(found)


def test_the_stage_list_exists_once():
    names = {s.name for s in pipeline.STAGES}
    assert len(names) >= 6
    found = {m: list(stage_literals(ast.parse(p.read_text()), names)) for m, p in MODULES.items()}
    assert {m: f for m, f in found.items() if f} == {}


def test_the_literal_finder_finds_one():
    tree = ast.parse("X = ('sft', 'cot')\nY = {'dpo': 1, 'eval': 2}\nZ = ['sft']")
    assert [l for l, _ in stage_literals(tree, {'sft', 'cot', 'dpo', 'eval'})] == [1, 2]


@pytest.fixture
def toy_stage(tmp_path):
    "A stage that writes a file, put into the pipeline before eval (and taken out again)."
    def runner(st, cfg, name=None, force=False, num_processes=None, live=None):
        name = name or cfg.preset
        fp = fingerprint('toy', cfg.preset)
        def work(path, status):
            (path / 'hello.txt').write_text('hello from the toy stage')
            finish_run(path, 'toy', fp, {}, files=['hello.txt'])
        return run_once(cfg.output_root, name, 'toy', fp, work, force=force)
    chapter = tmp_path / 'toy.ipynb'   # its chapter: the cells tagged `kernel` make its kernel
    cell = lambda kind, src, *tags: dict(cell_type=kind, metadata=dict(tags=list(tags)), source=src,
                                         **(dict(outputs=[], execution_count=None) if kind == 'code' else {}))
    chapter.write_text(json.dumps(dict(nbformat=4, nbformat_minor=5, metadata={}, cells=[
        cell('markdown', '# The toy stage\n\nIt writes hello.txt.', 'kernel'),
        cell('code', "preset = 'tiny'\noverrides = []\nname = None", 'kernel', 'parameters'),
        cell('code', 'print("not in the kernel")'),
        cell('code', "from tinytrainer.pipeline import stage\nrun = stage('toy').run(cfg, name=name)", 'kernel')])))
    toy = Stage('toy', after='dpo', trains=False, runner=runner, help='stage 5b: a toy stage that writes hello.txt',
                plan=lambda st, cfg, cur=None: 'toy: writes hello.txt',
                kernel=Kernel('TinyTrainer 5b toy', str(chapter), gpu=False, what='a toy stage'))
    pipeline.add_stage(toy, before='eval')
    yield toy
    pipeline.remove_stage('toy')


def test_a_new_stage_appears_everywhere(toy_stage, tmp_path):
    assert [s.name for s in pipeline.STAGES][-2:] == ['toy', 'eval']
    # the CLI: a subcommand, with its help, that runs it
    sub = next(a for a in parser()._actions if a.dest == 'command')
    assert 'toy' in sub.choices and 'writes hello.txt' in sub.choices['toy'].format_help()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(['toy', '--preset', 'tiny', '--output-root', str(tmp_path)]) == 0
    assert (tmp_path / 'tiny/toy/hello.txt').read_text() == 'hello from the toy stage'
    # the main job's plan and the main job itself (the stages before it are not run here: only toy)
    with contextlib.redirect_stdout(io.StringIO()) as out: assert main(['run', '--preset', 'tiny', '--dry-run']) == 0
    assert '6. toy: writes hello.txt' in out.getvalue() and '7. eval' in out.getvalue()
    cfg = load_config('tiny'); cfg.output_root = str(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()) as out: pipeline.run_pipeline(cfg, stages=['toy'])
    assert 'toy: reusing' in out.getvalue()
    # the Kaggle kernels: one more folder, chained after dpo and before eval
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(['kaggle', 'build', '--user', 'alice', '--out', str(tmp_path / 'k')]) == 0
    meta = json.loads((tmp_path / 'k/toy/kernel-metadata.json').read_text())
    assert meta['id'] == 'alice/tinytrainer-5b-toy' and meta['kernel_sources'][0] == 'alice/tinytrainer-5-dpo'
    assert json.loads((tmp_path / 'k/eval/kernel-metadata.json').read_text())['kernel_sources'][0] == 'alice/tinytrainer-5b-toy'
    nb = json.loads((tmp_path / 'k/toy/tinytrainer-5b-toy.ipynb').read_text())
    sources = [''.join(c['source']) for c in nb['cells']]
    assert "from tinytrainer.pipeline import stage\nrun = stage('toy').run(cfg, name=name)" in sources   # verbatim
    assert '# The toy stage\n\nIt writes hello.txt.' in sources and 'print("not in the kernel")' not in sources
    assert any("prepare_kernel('toy'" in s for s in sources)


def test_kernels_are_made_from_the_stage_chapters(tmp_path, monkeypatch):
    "Every kernel holds its chapter's marked cells verbatim; a changed Parameters cell changes the kernel (sync --check fails)."
    from dataclasses import replace
    from tinytrainer import kaggle
    from tinytrainer.devtools import project_root
    root = project_root(PKG)
    assert kaggle.sync_kernels(root, check=True) == 0
    for spec in kaggle.kernel_specs():
        nb = json.loads(next((root / 'kaggle' / spec.stage).glob('*.ipynb')).read_text())
        sources = [''.join(c['source']) for c in nb['cells']]
        marked = kaggle.marked_cells(root / 'nbs' / spec.notebook)
        assert [c['source'] for c in marked if c['source'] in sources] == [c['source'] for c in marked], spec.stage
        params = [c for c in nb['cells'] if 'parameters' in c['metadata'].get('tags', [])]
        assert len(params) == 1 and ''.join(params[0]['source']) == next(c['source'] for c in marked if c['parameters'])
    chapter = json.loads((root / 'nbs' / pipeline.stage('sft').kernel.notebook).read_text())
    cell = next(c for c in chapter['cells'] if 'parameters' in c['metadata'].get('tags', []))
    cell['source'] = ''.join(cell['source']) + "\nextra = 1   # a new parameter"
    (tmp_path / 'sft.ipynb').write_text(json.dumps(chapter))
    sft = pipeline.stage('sft')
    pipeline.add_stage(replace(sft, kernel=replace(sft.kernel, notebook=str(tmp_path / 'sft.ipynb'))), before='cot')
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err: assert kaggle.sync_kernels(root, check=True) == 1
        assert 'sft/' in err.getvalue()
        text = kaggle.kernel_files(kaggle.OWNER)[f"sft/{kaggle.slugify(sft.kernel.title)}.ipynb"]
        assert 'extra = 1   # a new parameter' in text
    finally: pipeline.add_stage(sft, before='cot')
    assert pipeline.stage('sft') is sft and kaggle.sync_kernels(root, check=True) == 0


def test_notebook_numbers_are_unique_and_the_tour_comes_first():
    from tinytrainer.devtools import project_root
    nbs = sorted(p.name for p in (project_root(PKG) / 'nbs').glob('*.ipynb') if p.stem != 'index')
    numbers = [n.split('_')[0] for n in nbs]
    assert len(set(numbers)) == len(numbers), sorted(n for n in numbers if numbers.count(n) > 1)
    assert nbs[0] == '00_tour.ipynb' and all(n[:2].isdigit() for n in nbs)


def test_gpu_check_dry_run_lists_every_gpu_cell():
    "`tools/gpu-check --dry-run` works without CUDA and names every chapter with a `#| gpu` cell and the benchmark, with times."
    import subprocess, sys
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'gpu-check'), '--dry-run'], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    flagged = {nb.name for nb in (ROOT / 'nbs').glob('*.ipynb')
               if any(c['cell_type'] == 'code' and ''.join(c['source']).startswith('#| gpu') for c in json.loads(nb.read_text())['cells'])}
    assert flagged and all(f'gpu cells: {nb}' in r.stdout for nb in flagged), r.stdout
    assert 'tinytrainer bench --device cuda' in r.stdout and re.search(r'~\d+\.\d min in all \(limit 8 min\)', r.stdout)
