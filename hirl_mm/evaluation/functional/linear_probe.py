"""Linear probe on frozen features: a logistic regression, the cheap linear protocol."""
import torch
from torch import Tensor, nn


def linear_probe_accuracy(train_feats: Tensor, train_labels: Tensor, test_feats: Tensor,
                          test_labels: Tensor, num_classes: int, weight_decay: float = 1e-4,
                          max_iter: int = 300) -> float:
    """Top-1 accuracy (percent) of a linear classifier trained on frozen features.

    Features are standardised with the training set's statistics (as a non-affine
    BatchNorm in front of the linear layer would), then a multinomial logistic regression
    with L2 regularisation is fitted full-batch with L-BFGS: deterministic, no learning rate
    to tune. Suited to data sets whose features fit in memory (e.g. the Fashion-MNIST study);
    the ImageNet protocol is the mmpretrain linear config under configs/benchmarks/.

    Args:
        train_feats (Tensor): ``[N, D]`` training features.
        train_labels (Tensor): ``[N]`` class indices.
        test_feats (Tensor): ``[M, D]`` test features.
        test_labels (Tensor): ``[M]`` class indices.
        num_classes (int): Number of classes.
        weight_decay (float): L2 penalty on the weights. Defaults to 1e-4.
        max_iter (int): L-BFGS iterations. Defaults to 300.

    Returns:
        float: Top-1 accuracy on the test features, in percent.
    """
    if train_feats.shape[0] != train_labels.shape[0] or \
            test_feats.shape[0] != test_labels.shape[0]:
        raise ValueError('Features and labels must have the same number of rows.')
    train_feats, test_feats = train_feats.double(), test_feats.double()
    mean, std = train_feats.mean(0), train_feats.std(0).clamp_min(1e-6)
    x_train, x_test = (train_feats - mean) / std, (test_feats - mean) / std
    y_train = train_labels.long().to(x_train.device)
    classifier = nn.Linear(x_train.shape[1], num_classes, dtype=torch.float64,
                           device=x_train.device)
    nn.init.zeros_(classifier.weight)
    nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.LBFGS(classifier.parameters(), max_iter=max_iter,
                                  line_search_fn='strong_wolfe')

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(classifier(x_train), y_train) \
            + weight_decay * classifier.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        predictions = classifier(x_test).argmax(dim=1).cpu()
    return float((predictions == test_labels.cpu()).double().mean() * 100)
