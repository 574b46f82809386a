from telbill.cli.main import main

main()
