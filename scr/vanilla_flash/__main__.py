from vanilla_flash.cli import main

raise SystemExit(main())
