#!/usr/bin/env python3
"""tools/make_fixtures.py: build tiny random OLMo Hybrid models with HF
transformers and record fp32 reference log-probs for the CPU engine tests.

Runs on the GPU machine (torch 2.11 + transformers 5.17 with
OlmoHybridForCausalLM); the forward itself runs on its CPU in fp32 with the
plain-torch GDN path (no flash-linear-attention), eager attention, fixed seeds.

Device command used (from the repo root, via the device `run` tool):
    PYTHONUNBUFFERED=1 python3 tools/make_fixtures.py --out $OUT 2>&1 | tee $OUT/log.txt
(--only NAME,... limits it to some models; "bundled" is the default model.)
It writes $OUT/fixtures.tar.gz (unpack at the repo root: tests/fixtures/models/*)
and $OUT/tiny.tar.gz (models/olmo-hybrid-tiny/{config.json,model.safetensors,refs.*}).

Models (tests/fixtures/models/<name>/):
  rope_gqa    RoPE theta 500000, GQA (4 q heads / 2 kv heads), 2 GDN key heads
              and 4 value heads, allow_neg_eigval true, untied, 8 layers.
  nope_tied   NoPE (rope_parameters.rope_theta null), tied embeddings,
              allow_neg_eigval false, 4 layers, odd GDN dims (Dk 12, Dv 24).
  split_alt   transformers' q/k/v conv split rewritten to uneven q/k/v_conv1d
              parts, norms renamed to the module names input_layernorm /
              post_attention_layernorm (5.17 itself saves attention_layer_norm /
              feedforward_layer_norm, in attention layers too); RoPE linear
              (factor 2), 2 GDN + 2 attention layers, GQA 3:1, Hv/Hk = 3.
  fused_conv  nope_tied with the conv stored fused (linear_attn.conv1d.weight).
  yarn        RoPE yarn (factor 4, original_max_position_embeddings 256).
  llama3      RoPE llama3 (factor 8, low 1, high 4, original 128).
Each holds config.json, model.safetensors (float32), refs.json, refs.bin.

refs.json: {"vocab", "sequences": [{"name","tokens","lp_offset"}],
            "full_rows": {"seq","start","count","offset"},
            "greedy": {"prompt","output"}, "fp64_max_abs_diff"}
refs.bin:  little-endian f32. For each sequence, len-1 values at lp_offset:
           log p(tokens[t+1] | tokens[..t]) for t = 0..len-2. Then the full
           log-softmax rows [count][vocab] at offset for positions start..
All offsets are in floats.
"""
import argparse
import json
import math
import os
import shutil
import sys
import tarfile
import tempfile

import torch
import transformers
from transformers import OlmoHybridConfig, OlmoHybridForCausalLM
from safetensors.torch import load_file, save_file

SEQ_LENS = [7, 64, 300, 1111]


def log(*a):
    print(*a, flush=True)


def introspect():
    log("torch", torch.__version__, "transformers", transformers.__version__)
    d = OlmoHybridConfig()
    log("default rope_parameters:", d.rope_parameters)
    try:
        from transformers.models.olmo_hybrid import modeling_olmo_hybrid as m
        log("fla fast path:", m.is_fast_path_available)
    except Exception as ex:  # informational only
        log("introspect modeling:", ex)


def make_config(**kw):
    rope = kw.pop("rope_parameters")
    cfg = None
    try:
        cfg = OlmoHybridConfig(rope_parameters=rope, **kw)
    except Exception as ex:
        log("config rejected rope_parameters", rope, "->", ex, "; setting after init")
        cfg = OlmoHybridConfig(**kw)
        cfg.rope_parameters = rope
    cfg._attn_implementation = "eager"
    return cfg


def randomize(model, seed):
    """Non-degenerate random weights: unit-variance projections, visible norm
    weights (a missing norm weight must change the output), varied conv."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log") or name.endswith("dt_bias"):
                continue  # HF's own init gives decays in interesting ranges
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "conv1d" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name or name.startswith("lm_head"):
                c = p.shape[1]
                p.copy_(2.0 / math.sqrt(c) * torch.randn(p.shape, generator=g))
            elif p.dim() == 2:
                fan_in = p.shape[1]
                scale = 0.7 if ("o_proj" in name or "down_proj" in name) else 1.0
                p.copy_(scale / math.sqrt(fan_in) * torch.randn(p.shape, generator=g))
            else:
                log("  left as initialised:", name, tuple(p.shape))


@torch.no_grad()
def logprobs(model, tokens, dtype=torch.float32):
    ids = torch.tensor([tokens], dtype=torch.long)
    out = model(input_ids=ids, use_cache=False)
    lg = out.logits[0].to(dtype)
    return torch.log_softmax(lg, dim=-1)


@torch.no_grad()
def greedy(model, prompt, n):
    toks = list(prompt)
    for _ in range(n):
        lp = logprobs(model, toks)
        toks.append(int(lp[-1].argmax()))
    return toks[len(prompt):]


def record_refs(model, vocab, seqs, full_seq, full_start, full_count, outdir, check64=True):
    model.eval()
    blob = []
    index = {"vocab": vocab, "sequences": [], "transformers": transformers.__version__,
             "torch": torch.__version__}
    max64 = 0.0
    m64 = None
    if check64:
        import copy
        m64 = copy.deepcopy(model).double()
    ent = []
    for name, toks in seqs:
        lp = logprobs(model, toks)
        tgt = torch.tensor(toks[1:], dtype=torch.long)
        vals = lp[:-1].gather(1, tgt[:, None])[:, 0]
        index["sequences"].append({"name": name, "tokens": toks, "lp_offset": len(blob)})
        blob.extend(vals.tolist())
        p = lp.exp()
        ent.append(float(-(p * lp).sum(-1).mean()))
        if m64 is not None:
            try:
                lp64 = logprobs(m64, toks, torch.float64)
                v64 = lp64[:-1].gather(1, tgt[:, None])[:, 0]
                max64 = max(max64, float((vals.double() - v64).abs().max()))
            except Exception as ex:  # informational only
                log("  fp64 check failed:", ex)
                m64 = None
        if name == full_seq:
            rows = lp[full_start:full_start + full_count]
            full = {"seq": name, "start": full_start, "count": full_count}
            fullvals = rows.reshape(-1).tolist()
    index["full_rows"] = dict(full, offset=len(blob))
    blob.extend(fullvals)
    index["fp64_max_abs_diff"] = max64
    rot = getattr(model.model, "rotary_emb", None)
    if rot is not None:
        index["rope_inv_freq"] = rot.inv_freq.tolist()
        index["rope_attention_scaling"] = float(rot.attention_scaling)
        index["rope_type"] = str(rot.rope_type)
    index["mean_entropy"] = ent
    index["uniform_entropy"] = math.log(vocab)
    prompt = seqs[0][1]
    index["greedy"] = {"prompt": prompt, "output": greedy(model, prompt, 12)}
    with open(os.path.join(outdir, "refs.json"), "w") as f:
        json.dump(index, f, separators=(",", ":"))
    import struct
    with open(os.path.join(outdir, "refs.bin"), "wb") as f:
        f.write(struct.pack("<%df" % len(blob), *blob))
    log("  entropy per seq", ["%.3f" % e for e in ent], "uniform %.3f" % math.log(vocab),
        "fp32-vs-fp64 max %.3g" % max64, "floats", len(blob))


def seqs_for(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return [("s%d" % n, torch.randint(0, vocab, (n,), generator=g).tolist()) for n in SEQ_LENS]


def build(name, root, seed, vocab, refs=True, **kw):
    log("== model", name)
    torch.manual_seed(seed)
    cfg = make_config(vocab_size=vocab, pad_token_id=0, eos_token_id=1, **kw)
    model = OlmoHybridForCausalLM(cfg).float()
    randomize(model, seed + 1)
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    with open(os.path.join(d, "config.json")) as f:
        log("  config.json:", f.read().replace("\n", " ")[:1500])
    sd = load_file(os.path.join(d, "model.safetensors"))
    log("  tensors:", len(sd), sorted(sd)[:6], "...")
    if refs:
        record_refs(model, vocab, seqs_for(vocab, seed + 2), "s7", 0, 7, d)
    return model, d


def rewrite(d, fn):
    """Rename / reshape tensors of d/model.safetensors with fn(name, tensor) ->
    list of (name, tensor)."""
    p = os.path.join(d, "model.safetensors")
    sd = load_file(p)
    out = {}
    for k in sorted(sd):
        for nk, nt in fn(k, sd[k], sd):
            out[nk] = nt.contiguous()
    save_file(out, p, metadata={"format": "pt"})
    log("  rewrote", d, "->", sorted(out)[:8])


def uneven_split(cfg):
    def fn(k, t, sd):
        if ".linear_attn.q_conv1d." in k:
            pre = k.split(".linear_attn.")[0]
            full = torch.cat([sd[pre + ".linear_attn.q_conv1d.weight"],
                              sd[pre + ".linear_attn.k_conv1d.weight"],
                              sd[pre + ".linear_attn.v_conv1d.weight"]], 0)
            cd = full.shape[0]
            n1 = cd // 3 + 1
            n2 = cd // 3 + 1
            parts = [full[:n1], full[n1:n1 + n2], full[n1 + n2:]]
            log("  uneven conv split", [x.shape[0] for x in parts], "of", cd)
            return [(pre + ".linear_attn.%s_conv1d.weight" % c, x) for c, x in zip("qkv", parts)]
        if ".linear_attn.k_conv1d." in k or ".linear_attn.v_conv1d." in k:
            return []
        # transformers 5.17 saves the olmo-core norm names (attention_layer_norm,
        # feedforward_layer_norm: its conversion mapping reverts the module
        # names on save); write the module-name variant here instead.
        k = k.replace(".attention_layer_norm.", ".input_layernorm.")
        k = k.replace(".feedforward_layer_norm.", ".post_attention_layernorm.")
        return [(k, t)]
    return fn


def fused_conv(k, t, sd):
    if ".linear_attn.q_conv1d." in k:
        pre = k.split(".linear_attn.")[0]
        full = torch.cat([sd[pre + ".linear_attn.q_conv1d.weight"],
                          sd[pre + ".linear_attn.k_conv1d.weight"],
                          sd[pre + ".linear_attn.v_conv1d.weight"]], 0)
        return [(pre + ".linear_attn.conv1d.weight", full)]
    if ".linear_attn.k_conv1d." in k or ".linear_attn.v_conv1d." in k:
        return []
    return [(k, t)]


def bundled(root, tokdir):
    log("== bundled olmo-hybrid-tiny")
    torch.manual_seed(7001)
    cfg = make_config(vocab_size=100352, hidden_size=64, intermediate_size=256,
                      num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                      tie_word_embeddings=True, max_position_embeddings=65536,
                      eos_token_id=100257, pad_token_id=100277,
                      rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    model = OlmoHybridForCausalLM(cfg).float()
    randomize(model, 7002)
    model = model.to(torch.bfloat16)
    d = os.path.join(root, "models", "olmo-hybrid-tiny")
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    with open(os.path.join(d, "config.json")) as f:
        log("  config.json:", f.read().replace("\n", " ")[:1500])
    log("  size", os.path.getsize(os.path.join(d, "model.safetensors")))
    # The reference runs the bf16 weights widened to fp32: exactly what the CPU
    # backend does at init. Reload from disk rather than model.float(): the
    # in-memory model.to(bfloat16) also rounded the rotary inv_freq buffer to
    # bf16, which no real loader does (the committed refs of 2026-12-06 were
    # made that way; check_engine_cpu.c explains the looser bound it implies).
    m32 = OlmoHybridForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    text = "Hello! This is a tiny random OLMo Hybrid model. 1234567 tokens, <think> maybe."
    try:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
        ids = tok.encode(text, add_special_tokens=False).ids
    except Exception as ex:
        log("  tokenizer failed:", ex)
        ids = [9906, 0, 1115, 374, 264, 13987, 4288]
    log("  prompt ids", ids)
    g = torch.Generator().manual_seed(7003)
    long_ids = torch.randint(0, 100278, (300,), generator=g).tolist()
    seqs = [("text", ids), ("s300", long_ids)]
    record_refs(m32, 100352, seqs, "text", len(ids) - 1, 1, d, check64=False)
    with open(os.path.join(d, "refs.json")) as f:
        r = json.load(f)
    r["text"] = text
    with open(os.path.join(d, "refs.json"), "w") as f:
        json.dump(r, f, separators=(",", ":"))


def bundled_refs(out):
    """Reference log-probs for the committed models/olmo-hybrid-tiny, read
    from disk in fp32 (no regeneration of its weights): writes out/refs.json."""
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "olmo-hybrid-tiny")
    with open(os.path.join(d, "refs.json")) as f:
        old = json.load(f)
    m32 = OlmoHybridForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    text = old["text"]
    from tokenizers import Tokenizer
    ids = Tokenizer.from_file(os.path.join(d, "tokenizer.json")).encode(text, add_special_tokens=False).ids
    g = torch.Generator().manual_seed(7003)
    long_ids = torch.randint(0, 100278, (300,), generator=g).tolist()
    record_refs(m32, 100352, [("text", ids), ("s300", long_ids)], "text", len(ids) - 1, 1, out,
                check64=False)
    with open(os.path.join(out, "refs.json")) as f:
        r = json.load(f)
    r["text"] = text
    with open(os.path.join(out, "refs.json"), "w") as f:
        json.dump(r, f, separators=(",", ":"))
    log("bundled refs written from the committed weights")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--bundled-refs", action="store_true",
                    help="only re-record models/olmo-hybrid-tiny/refs.json from its committed weights")
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    if a.bundled_refs:
        bundled_refs(a.out)
        return
    introspect()
    work = tempfile.mkdtemp()
    fx = os.path.join(work, "tests", "fixtures", "models")
    os.makedirs(fx)
    only = set(a.only.split(",")) if a.only else None

    def want(n):
        return only is None or n in only

    done = []
    jobs = [
        ("rope_gqa", dict(seed=101, vocab=256, hidden_size=64, intermediate_size=128,
                          num_hidden_layers=8, num_attention_heads=4, num_key_value_heads=2,
                          linear_num_key_heads=2, linear_num_value_heads=4,
                          linear_key_head_dim=16, linear_value_head_dim=16,
                          linear_allow_neg_eigval=True, tie_word_embeddings=False,
                          max_position_embeddings=4096,
                          rope_parameters={"rope_type": "default", "rope_theta": 500000.0})),
        ("nope_tied", dict(seed=202, vocab=320, hidden_size=32, intermediate_size=96,
                           num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=2,
                           linear_num_key_heads=2, linear_num_value_heads=2,
                           linear_allow_neg_eigval=False, tie_word_embeddings=True,
                           max_position_embeddings=4096,
                           rope_parameters={"rope_type": "default", "rope_theta": None})),
        ("split_alt", dict(seed=303, vocab=288, hidden_size=48, intermediate_size=112,
                           num_hidden_layers=4, num_attention_heads=3, num_key_value_heads=1,
                           linear_num_key_heads=2, linear_num_value_heads=6,
                           linear_key_head_dim=8, linear_value_head_dim=12,
                           linear_allow_neg_eigval=True, tie_word_embeddings=False,
                           max_position_embeddings=4096,
                           layer_types=["linear_attention", "full_attention",
                                        "linear_attention", "full_attention"],
                           rope_parameters={"rope_type": "linear", "rope_theta": 10000.0,
                                            "factor": 2.0})),
        ("yarn", dict(seed=404, vocab=256, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1,
                      linear_num_key_heads=1, linear_num_value_heads=2,
                      linear_key_head_dim=16, linear_value_head_dim=16,
                      tie_word_embeddings=True, max_position_embeddings=1024,
                      rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                       "original_max_position_embeddings": 256})),
        ("llama3", dict(seed=505, vocab=256, hidden_size=32, intermediate_size=64,
                        num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=2,
                        linear_num_key_heads=2, linear_num_value_heads=2,
                        linear_key_head_dim=8, linear_value_head_dim=16,
                        tie_word_embeddings=False, max_position_embeddings=1024,
                        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0,
                                         "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 128})),
    ]
    for name, kw in jobs:
        if not want(name):
            continue
        try:
            model, d = build(name, fx, **kw)
            if name == "split_alt":
                rewrite(d, uneven_split(model.config))
            if name == "nope_tied":
                d2 = os.path.join(fx, "fused_conv")
                shutil.copytree(d, d2)
                rewrite(d2, fused_conv)
                done.append("fused_conv")
            done.append(name)
        except Exception as ex:
            import traceback
            traceback.print_exc()
            log("FAILED", name, ex)
    with tarfile.open(os.path.join(a.out, "fixtures.tar.gz"), "w:gz") as t:
        t.add(os.path.join(work, "tests"), arcname="tests")
    log("fixtures done:", done)
    if want("bundled"):
        try:
            bundled(work, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                       "models", "olmo-hybrid-tiny"))
            with tarfile.open(os.path.join(a.out, "tiny.tar.gz"), "w:gz") as t:
                t.add(os.path.join(work, "models"), arcname="models")
        except Exception as ex:
            import traceback
            traceback.print_exc()
            log("FAILED bundled", ex)
    os.system("ls -laR %s | head -80; du -sh %s/*" % (work, a.out))


if __name__ == "__main__":
    main()
