"""Builds the embedded demo dataset: posts written for this project, with small drawn images.

A demo, not a benchmark: 60 short invented social-media posts, 5 for each of 12 relations,
each with a head and a tail entity and a 48x48 picture. Run `python -m zsmie.data.demo.build`
to rewrite `mre_demo.jsonl` and `images/` (the output is deterministic).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent

# (relation, post, head, tail); entities are written exactly as they occur in the post.
POSTS = [
    ("place_of_birth", "Happy birthday to Lena Park , born in Busan 30 years ago today !", "Lena Park", "Busan"),
    ("place_of_birth", "Proud that Marco Ruiz was born right here in Seville #hometown", "Marco Ruiz", "Seville"),
    ("place_of_birth", "Aisha Bello grew up far away but she was born in Lagos", "Aisha Bello", "Lagos"),
    ("place_of_birth", "The house in Dublin where poet Sean Walsh was born is now a museum", "Sean Walsh", "Dublin"),
    ("place_of_birth", "Born in Osaka , chef Kenji Mori returns home for a new restaurant", "Kenji Mori", "Osaka"),
    ("member_of", "Tom Becker joins Northwind FC as their new striker", "Tom Becker", "Northwind FC"),
    ("member_of", "Great speech by Ana Silva , senator of the Green Alliance party", "Ana Silva", "Green Alliance"),
    ("member_of", "Drummer Joe Kim has been with The Blue Foxes since 2015", "Joe Kim", "The Blue Foxes"),
    ("member_of", "Priya Nair elected to the board of the Riverside Council", "Priya Nair", "Riverside Council"),
    ("member_of", "Welcome Omar Haddad , the newest member of Team Horizon !", "Omar Haddad", "Team Horizon"),
    ("couple", "Congratulations to Emma Stone and Liam Gray on their wedding day !", "Emma Stone", "Liam Gray"),
    ("couple", "Sara Lund and her husband Erik Lund celebrate 25 years of marriage", "Sara Lund", "Erik Lund"),
    ("couple", "Nina Cole spotted holding hands with boyfriend Jake Reed in Paris", "Nina Cole", "Jake Reed"),
    ("couple", "Mia Chen says yes ! Engaged to longtime partner Alex Ford", "Mia Chen", "Alex Ford"),
    ("couple", "Actors Rosa Diaz and Ben Hale announce they are expecting their first child", "Rosa Diaz", "Ben Hale"),
    ("peer", "Rivals on court , friends off it : Dan Cho and Max Wolf after the final", "Dan Cho", "Max Wolf"),
    ("peer", "Co-stars Ella Hart and Noah Price reunite on the set of the sequel", "Ella Hart", "Noah Price"),
    ("peer", "Teammates Luis Ortega and Ken Ito share the podium in Monaco", "Luis Ortega", "Ken Ito"),
    ("peer", "Colleagues Dr Ruth Adler and Dr Sam Okoye publish their joint study", "Ruth Adler", "Sam Okoye"),
    ("peer", "Bandmates Zoe Quinn and Ivan Petrov play an acoustic set tonight", "Zoe Quinn", "Ivan Petrov"),
    ("nationality", "Swedish runner Karin Berg breaks the national record", "Karin Berg", "Swedish"),
    ("nationality", "Brazilian artist Paulo Reis opens his first show in London", "Paulo Reis", "Brazilian"),
    ("nationality", "Kenyan marathoner David Kiprop wins again in Boston", "David Kiprop", "Kenyan"),
    ("nationality", "The Canadian singer Claire Dubois tops the charts this week", "Claire Dubois", "Canadian"),
    ("nationality", "Japanese designer Yuki Sato shows her spring collection", "Yuki Sato", "Japanese"),
    ("located_in", "The new Acme Robotics headquarters opens in Austin next month", "Acme Robotics", "Austin"),
    ("located_in", "Visit the Harbor Museum in Hamburg this weekend , free entry", "Harbor Museum", "Hamburg"),
    ("located_in", "Greenleaf Bank closes its branch in Leeds after 80 years", "Greenleaf Bank", "Leeds"),
    ("located_in", "St Mary Hospital in Boston hires 200 new nurses", "St Mary Hospital", "Boston"),
    ("located_in", "Startup Pixelworks moves its office to Berlin", "Pixelworks", "Berlin"),
    ("held_in", "The Summer Jazz Festival will be held in Montreal this July", "Summer Jazz Festival", "Montreal"),
    ("held_in", "Thousands gather in Rome for the World Food Forum", "World Food Forum", "Rome"),
    ("held_in", "The 2026 Chess Olympiad takes place in Tashkent", "Chess Olympiad", "Tashkent"),
    ("held_in", "Tickets for Comic Expo in San Diego sold out in minutes", "Comic Expo", "San Diego"),
    ("held_in", "The city marathon returns to Chicago on Sunday", "city marathon", "Chicago"),
    ("awarded", "Director Hana Novak wins the Golden Lion for her debut film", "Hana Novak", "Golden Lion"),
    ("awarded", "Scientist Leo Grant receives the Nobel Prize in Chemistry", "Leo Grant", "Nobel Prize"),
    ("awarded", "Singer Amara Obi takes home the Grammy for best new artist", "Amara Obi", "Grammy"),
    ("awarded", "Author Jonas Vik honored with the Booker Prize tonight", "Jonas Vik", "Booker Prize"),
    ("awarded", "Goalkeeper Ivo Horvat named winner of the Golden Glove", "Ivo Horvat", "Golden Glove"),
    ("parent", "Proud dad Mark Evans watches his son Tyler Evans graduate", "Tyler Evans", "Mark Evans"),
    ("parent", "Lucy Grey and her mother Helen Grey open a bakery together", "Lucy Grey", "Helen Grey"),
    ("parent", "Baby Oscar Lane , first child of singer Kate Lane , turns one", "Oscar Lane", "Kate Lane"),
    ("parent", "Young golfer Ryo Tanaka learned the game from his father Hiro Tanaka", "Ryo Tanaka", "Hiro Tanaka"),
    ("parent", "Actress Maya Ross thanks her mom Diana Ross in her speech", "Maya Ross", "Diana Ross"),
    ("subsidiary", "BrightSky Airlines , a unit of Orion Group , adds ten routes", "BrightSky Airlines", "Orion Group"),
    ("subsidiary", "Nova Games is now owned by tech giant Helix Corp", "Nova Games", "Helix Corp"),
    ("subsidiary", "Fresh Fields , the grocery arm of Atlas Holdings , hires 500", "Fresh Fields", "Atlas Holdings"),
    ("subsidiary", "Peak Studios , a division of Summit Media , announces a new series", "Peak Studios", "Summit Media"),
    ("subsidiary", "Quantum Labs acquired by parent company Vertex Inc last year", "Quantum Labs", "Vertex Inc"),
    ("alumni", "Sofia Marin graduated from Oxford University with honors", "Sofia Marin", "Oxford University"),
    ("alumni", "Throwback to when Raj Patel studied at Stanford", "Raj Patel", "Stanford"),
    ("alumni", "Harvard alumna Grace Liu gives the commencement speech", "Grace Liu", "Harvard"),
    ("alumni", "Pedro Alves , a former student of MIT , launches a startup", "Pedro Alves", "MIT"),
    ("alumni", "Anna Kowalski earned her degree at the University of Warsaw", "Anna Kowalski", "University of Warsaw"),
    ("contains", "Gorgeous sunset over Santorini , Greece is magic", "Greece", "Santorini"),
    ("contains", "Road trip through Tuscany , the best part of Italy", "Italy", "Tuscany"),
    ("contains", "Snow falls on Kyoto , one of the oldest cities in Japan", "Japan", "Kyoto"),
    ("contains", "Exploring Patagonia in southern Argentina this month", "Argentina", "Patagonia"),
    ("contains", "Hiking in Yosemite , California never gets old", "California", "Yosemite"),
]

# Image palette per relation group; the drawing also varies by post so no two are alike.
COLORS = [(200, 60, 60), (60, 160, 80), (60, 90, 200), (220, 180, 40), (150, 70, 170), (40, 170, 180)]


def find_span(tokens: list[str], entity: str, where: str) -> list[int]:
    words = entity.split()
    for start in range(len(tokens) - len(words) + 1):
        if tokens[start : start + len(words)] == words:
            return [start, start + len(words)]
    raise ValueError(f"{where}: entity {entity!r} not found in the post")


def draw_image(index: int, relation: str) -> Image.Image:
    seed = zlib.crc32(f"{index}:{relation}".encode())
    image = Image.new("RGB", (48, 48), COLORS[seed % len(COLORS)])
    draw = ImageDraw.Draw(image)
    for k in range(3):
        x, y = (seed >> (4 * k)) % 32, (seed >> (4 * k + 12)) % 32
        draw.ellipse([x, y, x + 14, y + 14], fill=COLORS[(seed >> k) % len(COLORS)][::-1])
    return image


def build(out: Path = HERE) -> None:
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (relation, post, head, tail) in enumerate(POSTS, start=1):
        tokens = post.split()
        name = f"demo_{index:02d}.png"
        draw_image(index, relation).save(out / "images" / name, optimize=True)
        record = {
            "id": f"demo-{index:02d}",
            "tokens": tokens,
            "head": find_span(tokens, head, f"post {index}"),
            "tail": find_span(tokens, tail, f"post {index}"),
            "label": relation,
            "image": f"images/{name}",
        }
        lines.append(json.dumps(record))
    (out / "mre_demo.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    build()
