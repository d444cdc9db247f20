"""Work on finished runs: explanations, annotation reliance, illustrations, later external scoring."""
