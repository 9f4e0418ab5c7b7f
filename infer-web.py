"""Start RVC Studio's web UI.

python infer-web.py [--port 7865] [--listen] [--noautoopen] [--auth USER:PASS] [--lang ja_JP]
"""

from webui.launch import main

if __name__ == "__main__":
    raise SystemExit(main())
