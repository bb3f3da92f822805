from dbn_jax.app import main

main()
