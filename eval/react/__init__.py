"""ReAct (Yao et al. 2022): text tools, the multi-turn agent episode, and HotpotQA / FEVER /
GSM8K-with-calculator tasks in the Standard, CoT, Act, ReAct and FireAct modes. Entry point:
`agent_tasks.py`."""
