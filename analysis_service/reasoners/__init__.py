"""The reasoning side of discovery, behind one protocol (base.Reasoner): an LLM when
LLM_BASE_URL is set, else the offline statistical reasoner (tfidf_cluster).
factory.open_reasoner picks one."""
