"""Fakes for what cannot run here (a GPU model, remote LLMs), speaking the real interfaces."""
