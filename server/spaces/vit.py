"""AutoFormer-style vision transformer space: the network of a spec (edgescore.grammar.vit
parses it). It follows AutoFormer's sub-transformers (microsoft/Cream, AutoFormer/model/
supernet_transformer.py, as trained with --change_qkv):

  patch embed   conv patch_size x patch_size, stride patch_size, 3 -> embed_dim (with bias)
  tokens        a class token, then a learned absolute position embedding added to all tokens
  layer i       pre-norm: x + proj(attention(LayerNorm(x))), x + fc2(GELU(fc1(LayerNorm(x))))
                attention has num_heads[i] heads of a FIXED head dim of 64 (AutoFormer sets the
                q/k/v width to heads * 64, not embed_dim), so num_heads need not divide embed_dim;
                q/k/v with bias (AutoFormer's qkv_bias=True); MLP hidden = round(mlp_ratio[i] *
                embed_dim) (AutoFormer truncates; rounding keeps e.g. 2.3 * 100 from losing a unit)
  head          final LayerNorm, linear classifier on the class token

Left out on purpose: AutoFormer's 2-D relative position tables (--relative_position; ~100 K
parameters in the Tiny model, and gathered index tables export poorly) and its mean pooling over
patch tokens (--gp): the class token carries the prediction here, as in ViT/DeiT. AutoFormer-Tiny's
released subnet (experiments/subnet/AutoFormer-T.yaml) has 5,768,104 parameters here (1000
classes, 224x224); the paper reports 5.7 M, the repository's README 5.8 M (with the tables, 5.87 M).

Attention is written out (q/k/v linear, matmul, softmax) rather than nn.MultiheadAttention: it
needs a head dim independent of embed_dim, and exports to ONNX opset 17 op for op.
"""

from __future__ import annotations

import torch
from torch import nn

from edgescore.grammar import vit
from edgescore.grammar.base import ParsedArch
from edgescore.grammar.vit import HEAD_DIM, VitArch
from edgescore.server.spaces.base import SingleNetworkSpace

NETWORK_VARIANTS = ("default",)


class Attention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dim, 3 * num_heads * HEAD_DIM)
        self.proj = nn.Linear(num_heads * HEAD_DIM, embed_dim)
        self.scale = HEAD_DIM**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, HEAD_DIM).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (batch, heads, tokens, HEAD_DIM)
        weights = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(batch, tokens, self.num_heads * HEAD_DIM)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, embed_dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(embed_dim)
        self.attn = Attention(embed_dim, num_heads)
        self.mlp_norm = nn.LayerNorm(embed_dim)
        self.mlp = Mlp(embed_dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class VisionTransformer(nn.Module):
    def __init__(self, arch: VitArch, num_classes: int, resolution: int) -> None:
        super().__init__()
        dim, patch = arch.embed_dim, arch.patch_size
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (resolution // patch) ** 2 + 1, dim))
        # ViT / AutoFormer's initialisation of the two tensors no layer initialises.
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(*(Block(dim, arch.num_heads[i], arch.mlp_hidden(i))
                                      for i in range(arch.depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (batch, patches, dim)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class VitSpace(SingleNetworkSpace):
    """AutoFormer-style vision transformers (ImageNet defaults)."""

    network_variants = NETWORK_VARIANTS

    network_type = VisionTransformer

    def make_network(self, arch: ParsedArch) -> nn.Module:
        return VisionTransformer(arch.payload, arch.num_classes, arch.input_resolution)


SPACE = VitSpace(vit.GRAMMAR)
