"""The field's evaluation protocol: metrics (PSNR/SSIM on Y or RGB), the benchmark runner, reports.

from superres.evaluation import EvalConfig, evaluate
results = evaluate(EvalConfig(datasets=["benchmark/Set5"], scales=[2], methods=["bicubic", "edsr-medium-x2"]))
"""

from superres.evaluation.benchmark import EvalConfig, EvalResults, Method, evaluate

__all__ = ["EvalConfig", "EvalResults", "Method", "evaluate"]
