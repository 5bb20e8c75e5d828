from squall.cli import main

main()
