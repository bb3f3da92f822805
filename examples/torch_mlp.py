"""A network trained elsewhere, for `dbn-experiment model=weights` (docs/any-network.md): a 784-256-64-10 PyTorch
MLP (sigmoid hidden units, as the DBN's) trained for a few epochs on the 5,000 embedded MNIST digits the app uses,
its state dict saved with safetensors before and after training.

    python examples/torch_mlp.py mlp_init.safetensors mlp.safetensors
    dbn-experiment model=weights model.path=mlp.safetensors model.initial_path=mlp_init.safetensors \\
        model.transpose=true 'model.layers=[0.weight,2.weight,4.weight]'
"""

from __future__ import annotations

import argparse

import torch
from safetensors.torch import save_file

from dbn_jax.data import DataConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("initial", help="where to save the state dict before training (.safetensors)")
    parser.add_argument("trained", help="where to save the state dict after training (.safetensors)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ds = DataConfig(name="mnist5k").load(seed=args.seed)  # as the app loads `dataset=mnist5k`
    x, y = torch.tensor(ds.x_train), torch.tensor(ds.y_train, dtype=torch.long)
    torch.manual_seed(args.seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.Sigmoid(),
        torch.nn.Linear(256, 64), torch.nn.Sigmoid(),
        torch.nn.Linear(64, 10),
    )  # fmt: skip
    save_file(net.state_dict(), args.initial)  # keys 0.weight, 0.bias, 2.weight, ...: (out, in) matrices
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(1, args.epochs + 1):
        for idx in torch.randperm(len(x)).split(100):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (net(torch.tensor(ds.x_test)).argmax(1).numpy() == ds.y_test).mean()
        print(f"epoch {epoch}: loss {loss.item():.3f}, test accuracy {acc:.3f}")
    save_file(net.state_dict(), args.trained)


if __name__ == "__main__":
    main()
