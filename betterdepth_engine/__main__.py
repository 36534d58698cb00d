from betterdepth_engine.cli import main

raise SystemExit(main())
