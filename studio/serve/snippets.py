"""What the Deploy step and `python -m studio deploy` show: how a program calls a served model (copy and paste)."""

from __future__ import annotations

import json

from studio.words import Task

EXAMPLE_TICKET = "My invoice shows a charge I did not make, please refund it."
EXAMPLE_QUESTION = "How long does delivery take?"


def curl_line(base_url: str, name: str, task: str, key: str = "$SLM_STUDIO_KEY") -> str:
    base = base_url.rstrip("/")
    auth = f'-H "Authorization: Bearer {key}" '
    if task == Task.CLASSIFICATION:
        body = json.dumps({"text": EXAMPLE_TICKET})
        return f"curl -s {auth}-H 'Content-Type: application/json' -d '{body}' {base}/api/v1/models/{name}/classify"
    body = json.dumps({"model": name, "messages": [{"role": "user", "content": EXAMPLE_QUESTION}]})
    return f"curl -s {auth}-H 'Content-Type: application/json' -d '{body}' {base}/v1/chat/completions"


def python_snippet(base_url: str, name: str, task: str) -> str:
    base = base_url.rstrip("/")
    if task == Task.CLASSIFICATION:
        return (
            "import os, requests\n"
            f'answer = requests.post("{base}/api/v1/models/{name}/classify",\n'
            '    headers={"Authorization": "Bearer " + os.environ["SLM_STUDIO_KEY"]},\n'
            f'    json={{"text": {json.dumps(EXAMPLE_TICKET)}}}, timeout=60).json()\n'
            'print(answer["label"], answer["confidence"], "teacher" if answer["teacher_answered"] else "student")'
        )
    return (
        "import os\nfrom openai import OpenAI\n"
        f'client = OpenAI(base_url="{base}/v1", api_key=os.environ["SLM_STUDIO_KEY"])\n'
        f'reply = client.chat.completions.create(model="{name}",\n'
        f'    messages=[{{"role": "user", "content": {json.dumps(EXAMPLE_QUESTION)}}}])\n'
        "print(reply.choices[0].message.content)"
    )
