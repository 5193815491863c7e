# Measures the peak memory of one mlx-lm LoRA training step on random weights, to fit the
# constants in guard/memory.ts (CALIBRATION). Mirrors mlx_lm.tuner.trainer.train: LoRA on every
# linear of the trained layers, default_loss, optional grad_checkpoint, value_and_grad + Adam in
# mx.compile. Prints one JSON line; "extra" = peak minus what was resident before the step.
# Usage: python guard/calibration/calibrate_memory.py '{"h":1024,"inter":2816,"heads":16,"kv":4,"layers":6,"vocab":1000,"B":1,"S":1024,"trained":6,"ckpt":false}'
import sys, json
from functools import partial
import mlx.core as mx, mlx.nn as nn, mlx.optimizers as optim
from mlx_lm.models import llama
from mlx_lm.tuner.utils import linear_to_lora_layers
from mlx_lm.tuner.trainer import default_loss, grad_checkpoint

def run(h, inter, heads, kv, layers, vocab, B, S, trained, ckpt, rank=8):
    args = llama.ModelArgs(model_type="llama", hidden_size=h, num_hidden_layers=layers, intermediate_size=inter,
        num_attention_heads=heads, num_key_value_heads=kv, rms_norm_eps=1e-5, vocab_size=vocab, head_dim=h//heads, tie_word_embeddings=True)
    model = llama.Model(args)
    model.set_dtype(mx.bfloat16)
    mx.eval(model.parameters())
    model.freeze()
    linear_to_lora_layers(model, trained, {"rank": rank, "scale": 20.0, "dropout": 0.0})
    model.train()
    mx.eval(model.parameters())
    if ckpt: grad_checkpoint(model.layers[0])
    opt = optim.Adam(learning_rate=1e-5)
    lvg = nn.value_and_grad(model, default_loss)
    state = [model.state, opt.state, mx.random.state]
    @partial(mx.compile, inputs=state, outputs=state)
    def step(batch, lengths):
        (l, t), g = lvg(model, batch, lengths)
        opt.update(model, g)
        return l, t
    batch = mx.random.randint(0, vocab, (B, S + 1))
    lengths = mx.array([[0, S]] * B)
    mx.eval(batch, lengths)
    base = mx.get_active_memory()
    mx.reset_peak_memory()
    for _ in range(2):
        l, t = step(batch, lengths); mx.eval(l, t, state)
    peak = mx.get_peak_memory()
    return base, peak

cfg = json.loads(sys.argv[1])
b, p = run(**cfg)
print(json.dumps({**cfg, "base": b, "peak": p, "extra": p - b}))
