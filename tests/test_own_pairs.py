"""DPO on your own preference data: one local file in each of the three schemas (plain strings as JSONL, chat message
lists as JSON like HuggingFaceH4/ultrafeedback_binarized, ShareGPT conversations as Parquet), through curation, with
bad rows counted and a pair whose prompt is an evaluation problem kept out; `dpo.pairs=own` trains on them only, on the
CoT stack with that stack as reference, with no preference run (the README's commands, on `tiny`). Over-long pairs are
cut as DPO cuts them, and curation counts it per source."""
import contextlib, io, json
import pytest
from tinytrainer.cli import main
from tinytrainer.config import load_config
from tinytrainer.curate import load_curated
from tinytrainer.dpo import own_pairs, pair_logps, tokenize_pairs
from tinytrainer.loading import DataError
from tinytrainer.pipeline import stage
from tinytrainer.runs import read_json, read_manifest
from tinytrainer.stack import load_run
from tinytrainer.train import read_metrics

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

def pairs_set(root, files) -> str:
    return 'curate.data.pairs=' + json.dumps([dict(name=name, path=str(root / f)) for name, f in files])

def own_config(root, files, **over):
    return load_config('tiny', overrides=[f'output_root={root / "runs"}', 'dpo.pairs=own', pairs_set(root, files)]
                       + [f'{k}={v}' for k, v in over.items()])

FILES = [('pairs', 'plain.jsonl'), ('pairs_chat', 'uf.json'), ('pairs_sharegpt', 'sg.parquet')]

def cli(*args) -> str:
    "What `tinytrainer <args>` prints; it must exit 0."
    out = io.StringIO()
    with contextlib.redirect_stdout(out): assert main(list(args)) == 0, args
    return out.getvalue()

def test_dpo_trains_on_each_schema_without_a_preference_run(root):
    # the README's commands: a config file with your pairs, SFT and CoT (the stack), then DPO
    yaml = root / 'mine.yaml'
    yaml.write_text(cli('config', '--preset', 'tiny', '--set', pairs_set(root, FILES), 'dpo.pairs=own', f'output_root={root / "runs"}'))
    for s in ('sft', 'cot'): cli(s, '--config', str(yaml), '--name', 'mine')
    cur = root / 'runs' / 'mine' / 'curate'
    rep = read_json(cur / 'report.json')['mixtures']['pairs']
    by = {s['source']: s for s in rep['sources']}
    assert by['pairs']['kept'] == 20 and by['pairs']['skipped'] == {'chosen_equals_rejected': 1, 'eval_overlap': 1, 'missing:rejected': 1}
    assert by['pairs_chat']['kept'] == 19 and by['pairs_chat']['skipped'] == {'conversations_differ': 1}
    assert by['pairs_sharegpt']['kept'] == 20 and not by['pairs_sharegpt']['skipped'] and not any(s['cut'] for s in by.values())
    data = load_curated(cur)
    evals = {r['prompt'] for r in data['eval']}
    own = list(data['pairs_train']) + list(data['pairs_heldout'])
    assert len(own) == 59 and not evals & {r['prompt'] for r in own}       # no pair's prompt is an evaluation problem
    assert sum(bool(r['history']) for r in own) == 20                       # the ShareGPT turns kept as chat history
    assert {r['source'] for r in data['pairs_train']} == {'pairs', 'pairs_chat', 'pairs_sharegpt'}
    assert 'your own pairs only, on the cot stack' in cli('dpo', '--config', str(yaml), '--name', 'mine', '--dry-run')
    cli('dpo', '--config', str(yaml), '--name', 'mine')
    run = root / 'runs' / 'mine' / 'dpo'
    assert not (root / 'runs' / 'mine' / 'preference').exists()              # nothing sampled
    man, res = read_manifest(run), read_json(run / 'result.json')
    cot = read_manifest(root / 'runs' / 'mine' / 'cot')
    assert [a['name'] for a in man['adapters']] == ['sft', 'cot', 'dpo'] and man['inputs']['cot'] == cot['fingerprint'] and 'preference' not in man['inputs']
    assert res['status'] == 'done' and res['train_examples'] == len(data['pairs_train']) and res['heldout_examples'] == len(data['pairs_heldout'])
    assert res['tokenization']['kept'] == len(data['pairs_train'])
    # the reference is the CoT stack's own log-probs of every pair, rebuilt from its folder
    model, tok = load_run(root / 'runs' / 'mine' / 'cot')
    ex, _ = tokenize_pairs(own_pairs(cur), tok, 'alpaca', 128)
    fresh, stored = pair_logps(model, ex, 512, tok.pad_token_id, 'cpu'), read_json(run / 'reference.json')
    assert fresh.keys() == stored.keys() and max(abs(a - b) for k in fresh for a, b in zip(fresh[k], stored[k])) < 1e-4
    held = [m for m in read_metrics(run / 'metrics.jsonl') if 'eval_reward_accuracy' in m]
    assert held and held[0]['step'] == 0 and abs(held[0]['eval_reward_margin']) < 1e-5   # step 0: the policy is its reference
    print(f"held-out pairs {res['heldout_examples']}: reward accuracy {held[-1]['eval_reward_accuracy']:.2f}, "
          f"loss {held[-1].get('eval_loss')}, at step {held[-1]['step']}")

def test_a_file_without_a_rejected_column_is_named(root):
    (root / 'bad.jsonl').write_text(json.dumps(dict(prompt='p', chosen='c', answer='1')) + '\n')
    with pytest.raises(DataError) as e: stage('curate').run(own_config(root, [('pairs', 'bad.jsonl')]), name='bad')
    assert 'bad.jsonl' in str(e.value) and 'rejected' in str(e.value), str(e.value)

def test_long_pairs_are_cut_and_counted(root):
    "A 200 KB chosen answer and a 20 KB prompt against max_len 128: kept, cut (prompt from the left, answer from the right), counted per source."
    rows = [dict(prompt=f'What is {a} + 1?', chosen=f'#### {a + 1}', rejected=f'#### {a}') for a in range(6)]
    rows += [dict(prompt='Add them up.', chosen='1 + ' * 50_000 + '1\n#### 50001', rejected='#### 2'),       # 200 KB answer
             dict(prompt='ten ' * 5_000 + 'What is ten + ten?', chosen='#### 20', rejected='#### 10'),    # 20 KB prompt
             dict(prompt='Spell it.', chosen='a ' * 400 + 'b', rejected='a ' * 400 + 'c')]               # the same once cut
    (root / 'long.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    cfg = own_config(root, [('pairs', 'long.jsonl')])
    cur = stage('curate').run(cfg, name='long')
    src, = read_json(cur / 'report.json')['mixtures']['pairs']['sources']
    assert src['kept'] == 8 and src['skipped'] == {'same_after_cut': 1} and src['cut'] == {'answer_cut_right': 1, 'prompt_cut_left': 1}, src
    assert 'kept, cut to model.max_len: answer_cut_right 1, prompt_cut_left 1' in (cur / 'report.md').read_text()
    from tinytrainer.assets import load_tokenizer
    ex, counts = tokenize_pairs(own_pairs(cur), load_tokenizer('asset:smollm2-135m'), cfg.model.prompt_format, 128)
    assert counts == dict(kept=8, prompt_cut_left=1, answer_cut_right=1, same_after_cut=0) and max(s for e in ex for s in e['segments']) == 128

def test_too_few_own_pairs_are_named_before_training(root):
    cfg = own_config(root, FILES, **{'dpo.min_pairs': 500})
    with pytest.raises(Exception) as e: stage('dpo').run(cfg, name='mine')   # SFT and CoT of `mine` are finished (first test)
    assert type(e.value).__name__ == 'TooFewPairs' and 'of your own training pairs' in str(e.value) and 'curate.data.pairs' in str(e.value), str(e.value)
    assert not (root / 'runs' / 'mine' / 'preference').exists()
