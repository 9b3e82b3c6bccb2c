"""Every LLM request made, with its cost and accepted answer (the llm_call table)."""
