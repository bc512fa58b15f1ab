"""Jobs: distill / compress / evaluate work run outside any web request, recorded in storage.

kinds.py     what each kind of job is: a config dataclass and a function
service.py   submit, cancel, resume, delete (what the CLI and UI call)
queue.py     Huey queue of job ids; a worker runs each job in a child process
runner.py    the child process: runs a job to done / failed / cancelled
reporter.py  progress, step metrics, heartbeats and cancel between the job and the database
worker.py    `python -m studio worker`: serve the queue, recover from crashes
"""
