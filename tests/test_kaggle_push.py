"""The Kaggle CLI's own push validation (`KaggleApi.kernels_push`, `KaggleApi.dataset_create_new`), run on every
folder `tinytrainer kaggle build` writes and on the wheels dataset's metadata, with the network calls replaced."""
import contextlib, io, json, os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tinytrainer.cli import main
from tinytrainer.kaggle import STAGES, kernel_id, slugify
from tinytrainer.wheels import dataset_metadata


class FakeClient:
    "Stands for kagglesdk's KaggleClient: records the requests instead of sending them."
    def __init__(self): self.requests = []
    def __enter__(self): return self
    def __exit__(self, *a): return False
    def _record(self, request):
        self.requests.append(request)
        return SimpleNamespace(error=None, url='https://www.kaggle.com/fake', versionNumber=1, ref='', status='ok')
    @property
    def kernels(self): return SimpleNamespace(kernels_api_client=SimpleNamespace(save_kernel=self._record))
    @property
    def datasets(self): return SimpleNamespace(dataset_api_client=SimpleNamespace(create_dataset=self._record))


@pytest.fixture
def api(tmp_path, monkeypatch):
    "A KaggleApi that reads no credentials (an empty config dir) and sends nothing."
    monkeypatch.setenv('KAGGLE_CONFIG_DIR', str(tmp_path / 'kaggle-config'))
    monkeypatch.delenv('KAGGLE_USERNAME', raising=False)
    with contextlib.redirect_stdout(io.StringIO()):   # `import kaggle` prints how to authenticate
        from kaggle.api.kaggle_api_extended import KaggleApi
    api, client = KaggleApi(), FakeClient()
    monkeypatch.setattr(api, 'build_kaggle_client', lambda: client)
    api.client = client
    return api


def build(tmp_path, *args):
    out = tmp_path / 'kaggle_build'
    with contextlib.redirect_stdout(io.StringIO()): assert main(['kaggle', 'build', '--user', 'alice', '--out', str(out), *args]) == 0
    return out


def test_kernels_pass_the_cli_push_validation(tmp_path, api):
    from slugify import slugify as kaggle_slugify
    out = build(tmp_path)
    for spec in STAGES:
        assert slugify(spec.title) == kaggle_slugify(spec.title)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            api.kernels_push(str(out / spec.stage))
        assert 'does not resolve' not in printed.getvalue() and 'retired' not in printed.getvalue(), printed.getvalue()
    reqs = {r.slug: r for r in api.client.requests}
    assert list(reqs) == [kernel_id(s, 'alice') for s in STAGES]
    for spec in STAGES:   # the chain, as the server would receive it
        r = reqs[kernel_id(spec, 'alice')]
        assert r.kernel_data_sources == ([kernel_id(next(p for p in STAGES if p.stage == spec.previous), 'alice')] if spec.previous else [])
        assert r.dataset_data_sources == ['alice/tinytrainer-wheels'] and r.language == 'python' and r.kernel_type == 'notebook'
        assert (r.enable_gpu, r.machine_shape or None) == ((True, 'NvidiaTeslaT4') if spec.gpu else (False, None))
        assert r.enable_internet is True and r.is_private is True
        cells = json.loads(r.text)['cells']
        assert any(f'prepare_kernel({spec.stage!r}' in c['source'] for c in cells)


def test_resume_sources_and_internet_off_pass_too(tmp_path, api):
    out = build(tmp_path, '--internet', 'off', '--continue', 'sft', '--resume-dataset', 'cot=alice/cot-resume')
    for stage in ('sft', 'cot'): api.kernels_push(str(out / stage))
    sft, cot = api.client.requests
    assert sft.kernel_data_sources == ['alice/tinytrainer-1-curate', 'alice/tinytrainer-2-sft'] and sft.enable_internet is False
    assert cot.dataset_data_sources == ['alice/tinytrainer-wheels', 'alice/cot-resume']


def test_cli_validation_rejects_what_our_check_rejects(tmp_path, api):
    "The rules we check are the CLI's: a version in the id and a short title are refused by both."
    out = build(tmp_path)
    meta_path = out / 'sft' / 'kernel-metadata.json'
    meta = json.loads(meta_path.read_text())
    for bad, says in [(dict(id=meta['id'] + '/3'), 'cannot contain a version'), (dict(title='SFT'), 'at least five'),
                      (dict(code_file='missing.ipynb'), 'Source file not found'),
                      (dict(kernel_sources=['alice/cur']), 'at least five characters')]:
        meta_path.write_text(json.dumps({**meta, **bad}))
        with pytest.raises(ValueError, match=says): api.kernels_push(str(out / 'sft'))
        with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
            assert main(['kaggle', 'check', '--kernels', str(out)]) == 1
        assert '/sft: ' in err.getvalue()
    assert api.client.requests == []


def test_wheels_dataset_metadata_passes_the_cli_create_validation(tmp_path, api, monkeypatch):
    from requests.exceptions import HTTPError
    folder = tmp_path / 'wheels'; folder.mkdir()
    (folder / 'dataset-metadata.json').write_text(json.dumps(dataset_metadata('alice')))
    api.config_values = {api.CONFIG_NAME_USER: 'alice'}

    def not_found(ref): raise HTTPError('404')   # the slug is free
    monkeypatch.setattr(api, 'dataset_status', not_found)
    monkeypatch.setattr(api, 'upload_files', lambda *a, **k: None)
    result = api.dataset_create_new(str(folder))
    assert result.error is None
    (req,) = api.client.requests
    assert (req.owner_slug, req.slug, req.license_name, req.is_private) == ('alice', 'tinytrainer-wheels', 'other', True)
