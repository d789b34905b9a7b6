export HOOKS_A=1
