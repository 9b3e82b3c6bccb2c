"""The reasoning side of discovery, behind one protocol (base.Reasoner): an LLM when
LLM_BASE_URL is set, else the offline lexicon reasoner. factory.open_reasoner picks one."""
