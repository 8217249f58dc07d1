from abconv.cli import main

main()
