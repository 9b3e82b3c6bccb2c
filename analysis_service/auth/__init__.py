"""Who may call the analysis API: API keys (ANALYSIS_API_KEYS and stored ones), explorer
sign-in sessions, and the rule that an API without keys serves loopback only."""
