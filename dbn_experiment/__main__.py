from dbn_experiment.app import main

main()
