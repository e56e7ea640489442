from biasprobe.cli import main

main()
