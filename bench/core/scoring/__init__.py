"""Scoring top-1: labelled image folders (``datasets``, ``imagenet_classes``), tallies and the paired drop of a
precision (``accuracy``), and the accuracy document a report reads measured top-1 from (``accuracy_results``)."""
