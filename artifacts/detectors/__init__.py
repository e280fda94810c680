"""Detectors, one subpackage per task (manipulation, synthetic, dmri, views).

Every detector returns :class:`artifacts.types.Detection`; see :mod:`artifacts.detectors.base`.
Nothing heavy is imported here: model modules load through the registry when first used.
"""
