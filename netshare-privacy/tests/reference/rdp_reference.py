"""Independent reference values for the Renyi-DP accountant, computed with Google's
dp_accounting package (pip install dp-accounting). Writes rdp_reference.json beside this file.

Run: python3 rdp_reference.py
"""
import json
import logging
import os

from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp

logging.disable(logging.WARNING)

ORDERS = [1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5] + list(range(5, 64)) + [128, 256, 512]

cases = []
for q, sigma in [(0.01, 1.1), (0.1, 0.8), (0.05, 4.0), (0.2, 0.5), (0.001, 2.0)]:
    # Orders where the fractional series does not converge come out as inf; JSON has no inf, so None.
    per_step = [float(x) if x != float('inf') else None
                for x in rdp._compute_rdp_poisson_subsampled_gaussian(q, sigma, ORDERS)]
    for steps, delta in [(1, 1e-5), (1000, 1e-5), (20000, 1e-6)]:
        acc = rdp.RdpAccountant(ORDERS)
        acc.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)
        eps, order = acc.get_epsilon_and_optimal_order(delta)
        cases.append({"q": q, "sigma": sigma, "steps": steps, "delta": delta,
                      "epsilon": eps, "order": float(order)})
    cases.append({"q": q, "sigma": sigma, "per_step_rdp": per_step})

# A composed event of the kind the pipeline accounts: DP-SGD steps on two chunks of different
# sizes plus one Gaussian count release per chunk.
acc = rdp.RdpAccountant(ORDERS)
acc.compose(dp_event.PoissonSampledDpEvent(100 / 5000, dp_event.GaussianDpEvent(1.0)), 2000)
acc.compose(dp_event.PoissonSampledDpEvent(100 / 2000, dp_event.GaussianDpEvent(1.0)), 500)
acc.compose(dp_event.GaussianDpEvent(10.0), 2)
eps, order = acc.get_epsilon_and_optimal_order(1e-5)
composed = {"epsilon": eps, "order": float(order)}

with open(os.path.join(os.path.dirname(__file__), "rdp_reference.json"), "w") as f:
    json.dump({"orders": ORDERS, "cases": cases, "composed": composed}, f, indent=1)
print("wrote", len(cases), "cases")
