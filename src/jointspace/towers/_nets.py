"""The trainable towers' networks: ``torch.nn`` and ``transformers`` building blocks.

Every network takes ONE argument, the batch made by its tower's ``to_batch`` (a tensor or a
dict of tensors), and returns ``(n, out_dim)``.  Kept apart from the tower classes so that
listing towers does not import torch.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_stack(in_ch: int, widths, out_dim: int) -> nn.Sequential:
    """Conv-BN-ReLU-MaxPool blocks, global average pooling, a linear head."""
    layers, ch = [], in_ch
    for w in widths:
        layers += [nn.Conv2d(ch, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                   nn.MaxPool2d(2)]
        ch = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, out_dim)]
    return nn.Sequential(*layers)


class ImageCNN(nn.Module):
    """Plain CNN over (n, C, H, W)."""

    def __init__(self, channels: int, widths, out_dim: int):
        super().__init__()
        self.net = conv_stack(channels, widths, out_dim)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net(batch)


class ImageResNet(nn.Module):
    """A small ResNet (``transformers.ResNetModel``, basic blocks) + linear head."""

    def __init__(self, channels: int, widths, depths, out_dim: int):
        super().__init__()
        from transformers import ResNetConfig, ResNetModel

        cfg = ResNetConfig(num_channels=channels, embedding_size=widths[0], hidden_sizes=list(widths),
                           depths=list(depths), layer_type="basic", downsample_in_first_stage=False)
        self.body = ResNetModel(cfg)
        self.head = nn.Linear(widths[-1], out_dim)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(pixel_values=batch).pooler_output.flatten(1))


class ImageViT(nn.Module):
    """A small Vision Transformer (``transformers.ViTModel``); the [CLS] output + linear head."""

    def __init__(self, channels: int, image_size: int, patch_size: int, width: int, depth: int, heads: int,
                 out_dim: int):
        super().__init__()
        from transformers import ViTConfig, ViTModel

        cfg = ViTConfig(image_size=image_size, patch_size=patch_size, num_channels=channels, hidden_size=width,
                        num_hidden_layers=depth, num_attention_heads=heads, intermediate_size=4 * width)
        self.body = ViTModel(cfg, add_pooling_layer=False)
        self.head = nn.Linear(width, out_dim)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(pixel_values=batch).last_hidden_state[:, 0])


class BagOfEmbeddings(nn.Module):
    """Mean of learned word-piece vectors (word2vec-like) + linear head."""

    def __init__(self, vocab_size: int, embed_dim: int, out_dim: int, pad_id: int = 0):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean", padding_idx=pad_id)
        self.head = nn.Linear(embed_dim, out_dim)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(self.bag(batch["input_ids"]))


class GRUEncoder(nn.Module):
    """Bidirectional GRU over word-piece embeddings; last states of both directions + head."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, layers: int, out_dim: int, pad_id: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.gru = nn.GRU(embed_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, out_dim)

    def forward(self, batch: dict) -> torch.Tensor:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, h = self.gru(packed)  # (layers * 2, n, hidden)
        return self.head(torch.cat([h[-2], h[-1]], dim=1))


class TextTransformer(nn.Module):
    """A small BERT-style encoder (``transformers.BertModel``), masked mean pooling + head."""

    def __init__(self, vocab_size: int, width: int, depth: int, heads: int, max_length: int, out_dim: int):
        super().__init__()
        from transformers import BertConfig, BertModel

        cfg = BertConfig(vocab_size=vocab_size, hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads,
                         intermediate_size=4 * width, max_position_embeddings=max_length)
        self.body = BertModel(cfg, add_pooling_layer=False)
        self.head = nn.Linear(width, out_dim)

    def forward(self, batch: dict) -> torch.Tensor:
        mask = batch["attention_mask"]
        h = self.body(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1).clamp(min=1.0))


class AudioCNN(nn.Module):
    """CNN over a log-mel image (n, 1, n_mels, T); input batch-norm learns the dB scale."""

    def __init__(self, widths, out_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(1)
        self.net = conv_stack(1, widths, out_dim)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(batch))


class MLP(nn.Module):
    """Linear-ReLU-Dropout layers over feature vectors."""

    def __init__(self, in_dim: int, hidden, out_dim: int, dropout: float):
        super().__init__()
        layers, d = [], in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            d = h
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net(batch)
