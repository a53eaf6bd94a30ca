"""DPO on your own preference data: one local file in each of the three schemas (plain strings as JSONL, chat message
lists as JSON like HuggingFaceH4/ultrafeedback_binarized, ShareGPT conversations as Parquet), through curation, with
bad rows counted and a pair whose prompt is an evaluation problem kept out; `dpo.pairs=own` trains on them only."""
import json
import pytest
from tinytrainer.config import load_config
from tinytrainer.curate import load_curated
from tinytrainer.loading import DataError
from tinytrainer.pipeline import stage
from tinytrainer.runs import read_json

def chat(u, a): return [dict(role='user', content=u), dict(role='assistant', content=a)]

def write_files(tmp, eval_prompt):
    import pandas as pd
    qs = [(f'What is {a} + {a + 1}?', str(2 * a + 1), str(2 * a)) for a in range(1, 21)]
    plain = [dict(prompt=q, chosen=f'{q[8:-1]} = {c}\n#### {c}', rejected=f'#### {r}') for q, c, r in qs]
    plain += [dict(prompt='same', chosen='x', rejected='x'), dict(prompt='no rejected', chosen='x'),
              dict(prompt=eval_prompt, chosen='#### 1', rejected='#### 2')]          # 2 bad rows, 1 eval problem
    (tmp / 'plain.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in plain))
    uf = [dict(prompt=q, chosen=chat(q, f'#### {c}'), rejected=chat(q, f'#### {r}'), score_chosen=8.0) for q, c, r in qs]
    uf[0]['rejected'] = chat('another question', '#### 0')                            # conversations differ: skipped
    (tmp / 'uf.json').write_text(json.dumps(uf))
    turn = lambda f, v: {'from': f, 'value': v}
    sg = [dict(conversations=[turn('human', 'Hi'), turn('gpt', 'Hello! Ask me a sum.'), turn('human', q)],
               chosen=turn('gpt', f'The sum is {c}.\n#### {c}'), rejected=turn('gpt', f'#### {r}')) for q, c, r in qs]
    pd.DataFrame(sg).to_parquet(tmp / 'sg.parquet')

@pytest.fixture(scope='module')
def root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('own')
    probe = load_config('tiny', overrides=[f'output_root={tmp / "probe"}'])
    eval_prompt = load_curated(stage('curate').run(probe))['eval'][0]['prompt']
    write_files(tmp, eval_prompt)
    return tmp

def own_config(root, files, **over):
    pairs = json.dumps([dict(name=name, path=str(root / f)) for name, f in files])
    return load_config('tiny', overrides=[f'output_root={root / "runs"}', 'dpo.pairs=own', f'curate.data.pairs={pairs}']
                       + [f'{k}={v}' for k, v in over.items()])

FILES = [('pairs', 'plain.jsonl'), ('pairs_chat', 'uf.json'), ('pairs_sharegpt', 'sg.parquet')]

def test_dpo_trains_on_each_schema(root):
    cfg = own_config(root, FILES)
    cur = stage('curate').run(cfg)
    rep = read_json(cur / 'report.json')['mixtures']['pairs']
    by = {s['source']: s for s in rep['sources']}
    assert by['pairs']['kept'] == 20 and by['pairs']['skipped'] == {'chosen_equals_rejected': 1, 'eval_overlap': 1, 'missing:rejected': 1}
    assert by['pairs_chat']['kept'] == 19 and by['pairs_chat']['skipped'] == {'conversations_differ': 1}
    assert by['pairs_sharegpt']['kept'] == 20 and not by['pairs_sharegpt']['skipped']
    data = load_curated(cur)
    evals = {r['prompt'] for r in data['eval']}
    own = list(data['pairs_train']) + list(data['pairs_heldout'])
    assert len(own) == 59 and not evals & {r['prompt'] for r in own}       # no pair's prompt is an evaluation problem
    assert sum(bool(r['history']) for r in own) == 20                       # the ShareGPT turns kept as chat history
    for s in ('sft', 'cot', 'preference', 'dpo'): run = stage(s).run(cfg)
    res = read_json(run / 'result.json')
    assert res['status'] == 'done' and res['train_examples'] == len(data['pairs_train']) and res['heldout_examples'] == len(data['pairs_heldout'])
    assert res['tokenization']['kept'] == len(data['pairs_train'])

def test_a_file_without_a_rejected_column_is_named(root):
    (root / 'bad.jsonl').write_text(json.dumps(dict(prompt='p', chosen='c', answer='1')) + '\n')
    with pytest.raises(DataError) as e: stage('curate').run(own_config(root, [('pairs', 'bad.jsonl')]), name='bad')
    assert 'bad.jsonl' in str(e.value) and 'rejected' in str(e.value), str(e.value)
