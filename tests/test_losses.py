import torch

from zsmie.losses.ranking import max_margin_ranking


def test_ranking_loss_by_hand():
    scores = torch.tensor([[2.0, 1.5, -1.0], [0.0, 0.2, 0.9]])
    labels = torch.tensor([0, 2])
    # row 0: o+ = 2.0; negatives 1.5 -> max(0, 1 - 2 + 1.5) = 0.5, -1.0 -> 0 ; sum 0.5
    # row 1: o+ = 0.9; negatives 0.0 -> 0.1, 0.2 -> 0.3 ; sum 0.4
    assert torch.isclose(max_margin_ranking(scores, labels, 1.0), torch.tensor(0.45))
    # margin 2: row 0: 2 - 2 + 1.5 = 1.5 (the -1.0 stays at 0); row 1: 1.1 + 1.3 = 2.4
    assert torch.isclose(max_margin_ranking(scores, labels, 2.0), torch.tensor(1.95))


def test_ranking_loss_is_zero_when_true_label_wins_by_the_margin():
    scores = torch.tensor([[3.0, 1.0, 0.5]])
    assert max_margin_ranking(scores, torch.tensor([0]), 1.0).item() == 0.0


def test_ranking_loss_gradient_pushes_true_score_up():
    scores = torch.tensor([[0.0, 0.5]], requires_grad=True)
    max_margin_ranking(scores, torch.tensor([0])).backward()
    assert scores.grad.tolist() == [[-1.0, 1.0]]
