#!/usr/bin/env python3
"""PyTorch implementation of the same DoppelGANger step as netshare-model, for speed comparison.

Usage: torch_step.py ENCODED_DIR [--steps N] [--warmup N] [--threads N] [--config-json JSON]

Reads layout.json and train-000.safetensors from ENCODED_DIR (the safetensors header is parsed
by hand, so only torch is needed), builds the attribute generator (MLP with batch norm and
per-head activations), the LSTM feature generator conditioned on hard one-hot attributes, the
critic and the auxiliary critic, and times generator steps (each with `critic_steps` critic
steps, WGAN-GP with lambda at interpolates, alpha ~ U(0,1) per sample, gradient penalty through
torch.autograd.grad(create_graph=True)). Prints JSON: torch_version, mean_seconds, min_seconds.
"""
import argparse
import json
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        t = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32)
        out[name] = t.reshape(meta["shape"])
    return out


def runs(segments):
    out = []
    off = 0
    for s in segments:
        kind = ("softmax", s["dim"]) if s["activation"] == "softmax" else (s["activation"], 0)
        if out and out[-1][2] == kind and out[-1][0] + out[-1][1] == off:
            out[-1][1] += s["dim"]
        else:
            out.append([off, s["dim"], kind])
        off += s["dim"]
    return out


def activate(x, rs, hard=False):
    parts = []
    for off, ln, (kind, d) in rs:
        seg = x[:, off:off + ln]
        if kind == "softmax":
            z = seg.reshape(x.shape[0], ln // d, d)
            if hard:
                z = (z >= z.max(dim=2, keepdim=True).values).float()
            else:
                z = torch.softmax(z, dim=2)
            parts.append(z.reshape(x.shape[0], ln))
        elif hard:
            parts.append(seg)
        elif kind == "sigmoid":
            parts.append(torch.sigmoid(seg))
        else:
            parts.append(torch.tanh(seg))
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def mlp(inp, hidden, layers, out, batch_norm=False):
    mods = []
    fan = inp
    for _ in range(layers):
        mods.append(nn.Linear(fan, hidden))
        if batch_norm:
            mods.append(nn.BatchNorm1d(hidden))
        mods.append(nn.ReLU())
        fan = hidden
    mods.append(nn.Linear(fan, out))
    return nn.Sequential(*mods)


class Generator(nn.Module):
    def __init__(self, cfg, A, F_, T, attr_runs, feat_runs):
        super().__init__()
        self.cfg, self.A, self.F, self.T = cfg, A, F_, T
        self.S = cfg["sample_len"]
        self.steps = T // self.S
        self.attr_runs, self.feat_runs = attr_runs, feat_runs
        self.attr = mlp(cfg["attr_noise_dim"], cfg["gen_hidden"], cfg["gen_layers"], A, batch_norm=True)
        self.lstm = nn.LSTM(A + cfg["feat_noise_dim"], cfg["lstm_hidden"], batch_first=True)
        self.out = nn.Linear(cfg["lstm_hidden"], self.S * (F_ + 2))

    def forward(self, za, zf, h0, c0):
        attrs = activate(self.attr(za), self.attr_runs)
        cond = activate(attrs.detach(), self.attr_runs, hard=True)
        B = za.shape[0]
        x = torch.cat([cond.unsqueeze(1).expand(B, self.steps, self.A), zf], dim=2)
        hs, _ = self.lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)))
        raw = self.out(hs).reshape(B * self.T, self.F + 2)
        act = activate(raw, self.feat_runs)
        flags = act.detach()[:, self.F:self.F + 2]
        cont = (flags[:, 0] >= flags[:, 1]).float().reshape(B, self.T)
        shifted = torch.cat([torch.ones(B, 1), cont[:, :-1]], dim=1)
        mask = torch.cumprod(shifted, dim=1)
        rec = act.reshape(B, self.T, self.F + 2) * mask.unsqueeze(2)
        return attrs, rec.reshape(B, self.T * (self.F + 2))


def gradient_penalty(critic, x, lam):
    x = x.requires_grad_(True)
    out = critic(x)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    norm = torch.sqrt((g * g).sum(dim=1) + 1e-12)
    return lam * ((norm - 1.0) ** 2).mean()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("encoded")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--config-json", default=None)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    cfg = {
        "attr_noise_dim": 5, "feat_noise_dim": 5, "gen_hidden": 512,
        "gen_layers": 5, "lstm_hidden": 100, "critic_hidden": 512, "critic_layers": 5,
        "batch_size": 100, "critic_steps": 5, "gp_lambda": 10.0, "aux_weight": 1.0,
        "lr": 1e-4, "beta1": 0.5, "beta2": 0.999, "seed": 0,
    }
    if a.config_json:
        cfg.update(json.loads(a.config_json))
    torch.manual_seed(cfg["seed"])
    with open(os.path.join(a.encoded, "layout.json")) as f:
        layout = json.load(f)
    # Records per LSTM step: the encoder's setting, in the layout, unless the bench overrides it.
    cfg.setdefault("sample_len", layout.get("sample_len", 1))
    t = read_safetensors(os.path.join(a.encoded, "train-000.safetensors"))
    attributes, features, gen_flag = t["attributes"], t["features"], t["gen_flag"]
    N, T, F_ = features.shape
    A = attributes.shape[1]
    nxt = torch.cat([gen_flag[:, 1:], torch.zeros(N, 1)], dim=1)
    flags = torch.stack([gen_flag * nxt, gen_flag * (1 - nxt)], dim=2)
    real_rec = torch.cat([features, flags], dim=2).reshape(N, T * (F_ + 2))
    feat_segs = layout["features"] + [{"field": "gen_flag", "dim": 2, "activation": "softmax"}]
    gen = Generator(cfg, A, F_, T, runs(layout["attributes"]), runs(feat_segs))
    ch, cl = cfg["critic_hidden"], cfg["critic_layers"]
    critic = mlp(T * (F_ + 2) + A, ch, cl, 1)
    aux = mlp(A, ch, cl, 1)
    betas = (cfg["beta1"], cfg["beta2"])
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg["lr"], betas=betas)
    opt_d = torch.optim.Adam(list(critic.parameters()) + list(aux.parameters()), lr=cfg["lr"], betas=betas)
    B, lam = cfg["batch_size"], cfg["gp_lambda"]
    steps = T // cfg["sample_len"]

    def noise():
        return (torch.randn(B, cfg["attr_noise_dim"]), torch.randn(B, steps, cfg["feat_noise_dim"]),
                torch.randn(B, cfg["lstm_hidden"]), torch.randn(B, cfg["lstm_hidden"]))

    def iteration():
        for _ in range(cfg["critic_steps"]):
            idx = torch.randint(0, N, (B,))
            r_rec, r_attr = real_rec[idx], attributes[idx]
            with torch.no_grad():
                f_attr, f_rec = gen(*noise())
            alpha = torch.rand(B, 1)
            x_real = torch.cat([r_rec, r_attr], dim=1)
            x_fake = torch.cat([f_rec, f_attr], dim=1)
            x_mix = alpha * x_real + (1 - alpha) * x_fake
            a_mix = alpha * r_attr + (1 - alpha) * f_attr
            loss = (critic(x_fake).mean() - critic(x_real).mean() + gradient_penalty(critic, x_mix, lam)
                    + aux(f_attr).mean() - aux(r_attr).mean() + gradient_penalty(aux, a_mix, lam))
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            opt_d.step()
        f_attr, f_rec = gen(*noise())
        g_loss = -critic(torch.cat([f_rec, f_attr], dim=1)).mean() - cfg["aux_weight"] * aux(f_attr).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return g_loss.item()

    for _ in range(a.warmup):
        iteration()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t0)
    json.dump({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "mean_seconds": sum(times) / len(times),
        "min_seconds": min(times),
        "steps": a.steps,
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
