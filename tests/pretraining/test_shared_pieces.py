"""Unit tests of the shared pretraining pieces (schedules, EMA, heads, maskers), the losses and the collectives."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lensfm_hf.distributed import all_reduce_mean, concat_all_gather, gather_with_grad
from lensfm_hf.pretraining.dino import dino_loss, teacher_distribution
from lensfm_hf.pretraining.ema import EMATeacher, update_momentum
from lensfm_hf.pretraining.heads import DINOHead, ProjectionHead
from lensfm_hf.pretraining.ibot import masked_patch_loss
from lensfm_hf.pretraining.mae import patchify, unpatchify
from lensfm_hf.pretraining.masks import (
    MultiBlockMaskGenerator,
    block_mask,
    multiblock_masks,
    random_token_mask,
)
from lensfm_hf.pretraining.moco import moco_contrastive_loss
from lensfm_hf.pretraining.schedules import (
    cosine_schedule,
    linear_schedule,
    warmup_schedule,
)
from lensfm_hf.pretraining.simclr import nt_xent_loss

# ---------------------------------------------------------------------------------------------------------- schedules


def test_schedules_end_points_and_shapes():
    assert cosine_schedule(0.0, 0.996, 1.0) == pytest.approx(0.996)
    assert cosine_schedule(1.0, 0.996, 1.0) == pytest.approx(1.0)
    assert cosine_schedule(0.5, 0.99, 1.0) == pytest.approx(0.995)
    assert cosine_schedule(0.25, 0.0, 1.0) < 0.25  # cosine starts slowly
    assert linear_schedule(0.5, 0.996, 1.0) == pytest.approx(0.998)
    assert linear_schedule(2.0, 0.996, 1.0) == pytest.approx(1.0)  # clipped
    assert warmup_schedule(0.0, 0.1, 0.04, 0.07) == pytest.approx(0.04)
    assert warmup_schedule(0.05, 0.1, 0.04, 0.07) == pytest.approx(0.055)
    assert warmup_schedule(0.1, 0.1, 0.04, 0.07) == pytest.approx(0.07)
    assert warmup_schedule(0.7, 0.1, 0.04, 0.07) == pytest.approx(0.07)
    assert warmup_schedule(0.0, 0.0, 0.04, 0.07) == pytest.approx(0.07)


def test_update_momentum_is_exact_ema():
    torch.manual_seed(0)
    student, teacher = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    before = [p.detach().clone() for p in teacher.parameters()]
    update_momentum(student, teacher, 0.9)
    for old, s, t in zip(before, student.parameters(), teacher.parameters()):
        torch.testing.assert_close(t, 0.9 * old + 0.1 * s.detach())
    update_momentum(student, teacher, 0.0)
    for s, t in zip(student.parameters(), teacher.parameters()):
        assert torch.equal(t, s.detach())
    with pytest.raises(ValueError, match="structure"):
        update_momentum(student, torch.nn.Sequential(), 0.5)


def test_ema_teacher_copies_freezes_and_follows_its_schedule():
    torch.manual_seed(0)
    model = torch.nn.Module()
    model.student, model.teacher = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    ema = EMATeacher((("student", "teacher"),), start=0.5, end=1.0, schedule=linear_schedule)
    ema.initialise(model)
    assert all(torch.equal(s, t) for s, t in zip(model.student.parameters(), model.teacher.parameters()))
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert ema.momentum(0.5) == pytest.approx(0.75)
    assert EMATeacher((), 0.5, 1.0).momentum(0.5) == pytest.approx(cosine_schedule(0.5, 0.5, 1.0))
    before = [p.detach().clone() for p in model.teacher.parameters()]
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    ema.update(model, progress=0.0)  # momentum 0.5
    for old, s, t in zip(before, model.student.parameters(), model.teacher.parameters()):
        torch.testing.assert_close(t, 0.5 * old + 0.5 * s.detach())


def test_collectives_are_identity_in_one_process():
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x
    assert torch.equal(concat_all_gather(x), x)
    assert torch.equal(all_reduce_mean(x), x)


# -------------------------------------------------------------------------------------------------------------- heads


def test_moco_projection_head_structure():
    head = ProjectionHead(8, 16, 4, num_layers=3, bias=False, last_batch_norm=True, last_batch_norm_affine=False)
    linears = [m for m in head if isinstance(m, torch.nn.Linear)]
    norms = [m for m in head if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(linears) == 3 and all(m.bias is None for m in linears)
    assert len(norms) == 3 and not norms[-1].affine and norms[0].affine
    assert head(torch.randn(5, 8)).shape == (5, 4)


def test_dino_head_weight_norm_and_frozen_last_layer():
    torch.manual_seed(0)
    head = DINOHead(8, 32, hidden_dim=16, bottleneck_dim=6)
    torch.nn.init.normal_(head.last_layer_v)
    assert not head.last_layer_g.requires_grad  # norm_last_layer=True
    torch.testing.assert_close(head.last_layer_weight().norm(dim=1), torch.ones(32))
    x = torch.randn(4, 5, 8)  # works on token sequences too
    assert head(x).shape == (4, 5, 32)
    head(x, freeze_last_layer=True).sum().backward()
    assert torch.all(head.last_layer_v.grad == 0) and head.mlp[0].weight.grad.abs().sum() > 0
    head.zero_grad(set_to_none=True)
    head(x).sum().backward()
    assert head.last_layer_v.grad.abs().sum() > 0
    assert DINOHead(8, 32, norm_last_layer=False).last_layer_g.requires_grad


# -------------------------------------------------------------------------------------------------------------- masks


def test_random_token_mask_exact_counts_and_restore():
    torch.manual_seed(0)
    masking = random_token_mask(6, 16, 0.75)
    assert masking.keep_indices.shape == (6, 4)
    assert torch.equal(masking.mask.sum(1), torch.full((6,), 12.0))
    assert torch.all(masking.mask.gather(1, masking.keep_indices) == 0)
    for row in masking.keep_indices:
        assert row.unique().numel() == 4
    # ids_restore undoes the shuffle: the first K shuffled positions are the kept ones.
    shuffle = torch.argsort(masking.ids_restore, dim=1)
    assert torch.equal(shuffle[:, :4], masking.keep_indices)
    torch.manual_seed(0)
    assert torch.equal(random_token_mask(6, 16, 0.75).keep_indices, masking.keep_indices)  # seedable
    with pytest.raises(ValueError, match="visible"):
        random_token_mask(2, 4, 0.9)


def test_block_mask_budget_blocks_and_reach():
    torch.manual_seed(0)
    grid = 8
    ratio = torch.tensor([0.0, 0.1, 0.3, 0.5] * 50)
    masks = block_mask(ratio.numel(), grid, grid, ratio)
    counts = masks.sum(1).float()
    assert torch.all(counts <= ratio * grid * grid)  # never more than the budget (BEiT rule)
    assert torch.all(counts[ratio == 0] == 0)
    assert counts[ratio == 0.5].mean() > 0.6 * 0.5 * grid * grid  # and close to it on average
    assert torch.all(masks.view(-1, grid, grid).any(0))  # every patch, last row/column included, can be masked


def test_multiblock_masks_counts_overlap_and_ranges():
    torch.manual_seed(0)
    grid, batch = 14, 16
    for _ in range(10):
        masks = multiblock_masks(batch, grid, grid, num_targets=4, min_keep=10)
        assert masks.target_indices.shape[:2] == (batch, 4)
        block = masks.target_indices.shape[2]
        # Block area: scale U(0.15, 0.2) of 196 patches, up to rounding each side of a (0.75-1.5 aspect) block.
        area_max = 0.2 * grid * grid
        rounding = 0.5 * (math.sqrt(area_max * 1.5) + math.sqrt(area_max / 0.75)) + 0.25
        assert 0.15 * grid * grid - rounding <= block <= area_max + rounding
        num_context = masks.context_indices.shape[1]
        assert num_context >= 10
        for b in range(batch):
            context = set(masks.context_indices[b].tolist())
            targets = set(masks.target_indices[b].flatten().tolist())
            assert len(context) == num_context  # no duplicates
            assert not context & targets  # the context excludes every target patch
            for target in masks.target_indices[b]:
                rows, cols = target // grid, target % grid
                height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
                assert height * width == block and target.unique().numel() == block  # a full rectangle


def test_multiblock_targets_reach_every_patch_including_last_row_and_column():
    torch.manual_seed(0)
    grid = 8
    hits = torch.zeros(grid * grid)
    for _ in range(30):
        masks = multiblock_masks(32, grid, grid, num_targets=4, min_keep=4)
        hits += torch.bincount(masks.target_indices.flatten(), minlength=grid * grid)
    hits = hits.view(grid, grid)
    assert torch.all(hits > 0)
    assert hits[-1].min() > 0 and hits[:, -1].min() > 0  # the official collator never reaches these


def test_multiblock_generator_is_seedable_and_configurable():
    generator = MultiBlockMaskGenerator(num_targets=2, min_keep=4)
    torch.manual_seed(3)
    first = generator(4, 8, 8, "cpu")
    torch.manual_seed(3)
    second = generator(4, 8, 8, "cpu")
    assert torch.equal(first.context_indices, second.context_indices)
    assert torch.equal(first.target_indices, second.target_indices)
    assert first.target_indices.shape[1] == 2


# ------------------------------------------------------------------------------------------------------------- losses


def test_nt_xent_has_2n_minus_2_negatives():
    torch.manual_seed(0)
    z0, z1 = torch.randn(5, 8), torch.randn(5, 8)
    tau = 0.3
    a, b = F.normalize(z0, dim=1), F.normalize(z1, dim=1)
    losses = []
    for anchors, others in ((a, b), (b, a)):
        for i in range(5):
            positive = anchors[i] @ others[i] / tau
            negatives = [anchors[i] @ others[j] / tau for j in range(5) if j != i]
            negatives += [anchors[i] @ anchors[j] / tau for j in range(5) if j != i]
            logits = torch.stack([positive] + negatives)
            assert logits.numel() == 1 + 2 * 5 - 2
            losses.append(-torch.log_softmax(logits, 0)[0])
    torch.testing.assert_close(nt_xent_loss(z0, z1, tau), torch.stack(losses).mean())


def test_moco_loss_is_two_tau_cross_entropy():
    torch.manual_seed(0)
    q, k = torch.randn(6, 4), torch.randn(6, 4)
    logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / 0.2
    expected = F.cross_entropy(logits, torch.arange(6)) * 0.4
    torch.testing.assert_close(moco_contrastive_loss(q, k, 0.2), expected)


def test_dino_loss_skips_same_view_pairs():
    torch.manual_seed(0)
    batch, dim = 3, 7
    student = torch.randn(4 * batch, dim)  # 2 global + 2 local crops
    teacher = torch.softmax(torch.randn(2 * batch, dim), -1)
    expected, terms = 0.0, 0
    s_chunks, t_chunks = student.chunk(4), teacher.chunk(2)
    for iq in range(2):
        for v in range(4):
            if v != iq:
                expected += (-t_chunks[iq] * F.log_softmax(s_chunks[v] / 0.1, -1)).sum(-1).mean()
                terms += 1
    assert terms == 6
    torch.testing.assert_close(dino_loss(student, teacher, 0.1, 4), expected / terms)
    centered = teacher_distribution(torch.zeros(2, 3), torch.tensor([[0.0, 0.0, 1.0]]), 0.5)
    assert centered[0, 2] < centered[0, 0]


def test_masked_patch_loss_ignores_unmasked_positions():
    torch.manual_seed(0)
    student = torch.randn(2, 5, 6)
    teacher = torch.softmax(torch.randn(2, 5, 6), -1)
    masks = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    loss = masked_patch_loss(student, teacher, masks, 0.1)
    changed = student.clone()
    changed[~masks] = 100 * torch.randn_like(changed[~masks])
    torch.testing.assert_close(masked_patch_loss(changed, teacher, masks, 0.1), loss)
    per_token = (-teacher[0] * F.log_softmax(student[0] / 0.1, -1)).sum(-1)
    torch.testing.assert_close(loss, (per_token[0] + per_token[3]) / 2 / 2)  # unmasked image counts as 0


@pytest.mark.parametrize("channels", [1, 3])
def test_patchify_round_trip(channels):
    x = torch.randn(2, channels, 16, 24)
    patches = patchify(x, 8)
    assert patches.shape == (2, 6, 64 * channels)
    assert torch.equal(unpatchify(patches, 8, 2, 3), x)
    assert torch.equal(patches[0, 1, :channels], x[0, :, 0, 8])  # patch (0, 1), first pixel, all channels


# ------------------------------------------------------------------------------------------------- two-process check


def _distributed_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(0)  # the same global tensors on every rank; each rank keeps its own chunk
    z0, z1 = torch.randn(8, 5), torch.randn(8, 5)
    mine0 = z0.chunk(world_size)[rank].clone().requires_grad_(True)
    mine1 = z1.chunk(world_size)[rank].clone().requires_grad_(True)
    simclr = nt_xent_loss(mine0, mine1, 0.3)
    simclr.backward()
    moco = moco_contrastive_loss(z0.chunk(world_size)[rank], z1.chunk(world_size)[rank], 0.2)
    mean = all_reduce_mean(torch.tensor([float(rank)]))
    torch.save(
        {"simclr": simclr.detach(), "moco": moco, "grad0": mine0.grad, "grad1": mine1.grad, "mean": mean},
        f"{out_dir}/rank{rank}.pt",
    )
    dist.destroy_process_group()


def test_losses_across_two_processes_match_one_process(tmp_path):
    """Negatives gathered with gradient (SimCLR) and keys without (MoCo, labels offset by N·rank) give the
    single-process loss and gradients on the concatenated batch."""
    import torch.multiprocessing as mp

    # fork: the children reuse the imported modules (spawn would re-import torch and transformers, ~15 s).
    mp.start_processes(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    torch.manual_seed(0)
    z0 = torch.randn(8, 5, requires_grad=True)
    z1 = torch.randn(8, 5, requires_grad=True)
    single = nt_xent_loss(z0, z1, 0.3)
    single.backward()
    torch.testing.assert_close((ranks[0]["simclr"] + ranks[1]["simclr"]) / 2, single.detach())
    # Each rank's gradient is that of the summed loss; DDP's averaging over ranks then gives the single-process one.
    torch.testing.assert_close(torch.cat([r["grad0"] for r in ranks]) / 2, z0.grad)
    torch.testing.assert_close(torch.cat([r["grad1"] for r in ranks]) / 2, z1.grad)
    torch.testing.assert_close((ranks[0]["moco"] + ranks[1]["moco"]) / 2, moco_contrastive_loss(z0, z1, 0.2))
    assert ranks[0]["mean"].item() == ranks[1]["mean"].item() == 0.5


def test_export_encoder_picks_the_student_or_its_ema_teacher():
    # The exported encoder is the student by default; `export_encoder="teacher"` exports the EMA copy (I-JEPA's
    # target encoder, DINO's teacher), and a method with no EMA copy of its encoder refuses it.
    from lensfm_hf.pretraining import get_pretraining_classes

    config_class, model_class = get_pretraining_classes("ijepa")
    model = model_class(config_class.from_preset("micro", image_size=16, patch_size=8, num_hidden_layers=1))
    with torch.no_grad():
        for p in model.target_encoder.parameters():
            p.add_(1.0)  # make the teacher differ from the student
    assert model.get_encoder() is model.lens_vit
    model.config.export_encoder = "teacher"
    assert model.get_encoder() is model.target_encoder
    config_class, model_class = get_pretraining_classes("simclr")
    simclr = model_class(config_class.from_preset("micro", image_size=16, patch_size=8, num_hidden_layers=1,
                                                  export_encoder="teacher"))
    with pytest.raises(ValueError, match="no EMA teacher.*export_encoder='student'"):
        simclr.get_encoder()
    with pytest.raises(ValueError, match="export_encoder must be one of"):
        config_class(export_encoder="ema")
