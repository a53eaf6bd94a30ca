"""2 ranks x 2 micro-batches give the same gradient as one combined batch (the loss is normalised over the step)."""
import os, subprocess, sys, textwrap

def test_two_ranks_two_micro_batches_equal_one_batch(tmp_path):
    script = tmp_path / 'grad.py'
    script.write_text(textwrap.dedent(f"""
        import torch
        from accelerate import notebook_launcher
        from tinytrainer.launch import free_port
        OUT = {str(tmp_path)!r}

        def setup():
            from tinytrainer.config import preset
            from tinytrainer.curate import curate, load_curated
            from tinytrainer.model import add_lora, load_base
            from tinytrainer.tokenization import tokenize_records, plan_epoch
            cfg = preset('tiny'); cfg.output_root = OUT + '/runs'; cfg.sft.lora.dropout = 0.0
            data = load_curated(curate(cfg, quiet=True))
            base, tok = load_base(cfg.model, seed=0)
            model = add_lora(base, cfg.sft.lora, 'sft')
            torch.manual_seed(1)
            for n, p in model.named_parameters():
                if 'lora_' in n: torch.nn.init.normal_(p, std=0.02)
            ex, _ = tokenize_records(data['sft_train'], tok, cfg.model.prompt_format, cfg.model.max_len)
            return model, ex, plan_epoch, tok

        def worker():
            from accelerate import Accelerator
            from tinytrainer.train import collate, lm_loss
            acc = Accelerator(cpu=True)
            model, ex, plan_epoch, tok = setup()
            step = plan_epoch(ex, 256, 1024, world=2, seed=0)[0]
            assert [len(m) for m in step.micro] == [2, 2], [len(m) for m in step.micro]
            model = acc.prepare(model)
            for j, rows in enumerate(step.micro[acc.process_index]):
                ctx = acc.no_sync(model) if j == 0 else torch.enable_grad()
                with ctx:
                    loss, _ = lm_loss(model, collate(ex, rows, True, 0, 'cpu'))
                    acc.backward(loss * (2 / step.tokens))
            if acc.is_main_process:
                m = acc.unwrap_model(model)
                torch.save({{n: p.grad for n, p in m.named_parameters() if p.requires_grad}}, OUT + '/ddp.pt')
                torch.save(step, OUT + '/step.pt')

        if __name__ == '__main__':
            notebook_launcher(worker, num_processes=2, use_port=str(free_port()))
            from tinytrainer.train import collate, lm_loss
            model, ex, plan_epoch, tok = setup()
            step = torch.load(OUT + '/step.pt', weights_only=False)
            rows = [i for m in step.micro for r in m for i in r]
            loss, _ = lm_loss(model, collate(ex, rows, True, 0, 'cpu'))
            (loss / step.tokens).backward()
            ddp = torch.load(OUT + '/ddp.pt')
            worst = max((p.grad - ddp[n]).abs().max().item() for n, p in model.named_parameters() if p.requires_grad)
            scale = max(p.grad.abs().max().item() for n, p in model.named_parameters() if p.requires_grad)
            print('WORST', worst, 'SCALE', scale)
    """))
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    line = [l for l in r.stdout.splitlines() if l.startswith('WORST')][-1].split()
    worst, scale = float(line[1]), float(line[3])
    assert scale > 0 and worst <= 1e-6 * max(1.0, scale), (worst, scale)
