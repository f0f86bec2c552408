"""Model families that live outside the pack: each registers itself from its test (see
``tests/test_outside_family.py``) and passes the contract suite like a built-in one."""
