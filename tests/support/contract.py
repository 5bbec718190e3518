from satchel.testing import StoreContract, assert_fork_safe, new_key  # noqa: F401 - store test modules import these here
